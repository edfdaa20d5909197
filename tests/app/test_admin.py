"""Django admin as operators use it: lists, bulk actions, CSV import/export, unknown tokens, API keys."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.access.models import DriverToken, Grant, Station, TokenGroup
from apps.access.policy import Reason, Status
from apps.access.services import acl_insert, authorization_decide
from apps.charging.admin import CappedCountPaginator
from apps.charging.models import ChargingRequest
from apps.clients.keys import key_parse, secret_hash
from apps.clients.models import ApiClient, ApiKey
from apps.clients.selectors import api_key_authenticate
from apps.clients.services import api_client_get_or_create, api_key_create
from tests.app.callers import OTHER_STATION, OTHER_TOKEN, STATION, TOKEN, LogRow

pytestmark = pytest.mark.django_db

THIRD_TOKEN = "APP-7f3a9c2e-0d41-4b8e-a6c5"
HEX_STATION = "9B2E4F6A1C3D4E5F8A7B6C5D4E3F2A1B"  # 32 hex digits, upper case: stored hyphenated, lower
HEX_STATION_STORED = "9b2e4f6a-1c3d-4e5f-8a7b-6c5d4e3f2a1b"


def url(name: str, *args: Any) -> str:
    return reverse(f"admin:{name}", args=args)


def decide(station_id: str = STATION, driver_token: str = TOKEN) -> tuple[str, str]:
    decision = authorization_decide(station_id=station_id, driver_token=driver_token, at=timezone.now())
    return decision.status.value, decision.reason.value


def run_action(admin_client: Client, changelist: str, action: str, pks: list[Any]) -> Any:
    return admin_client.post(
        url(changelist), {"action": action, "_selected_action": [str(pk) for pk in pks]}, follow=True
    )


def csv_file(name: str, rows: list[list[str]]) -> SimpleUploadedFile:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return SimpleUploadedFile(name, buffer.getvalue().encode(), content_type="text/csv")


def import_preview(admin_client: Client, model: str, upload: SimpleUploadedFile) -> Any:
    """Step one of an import: upload the file, get the preview (or the list of bad rows)."""
    return admin_client.post(
        url(f"access_{model}_import"), {"resource": "0", "format": "0", "import_file": upload}
    )


def import_confirm(admin_client: Client, model: str, preview: Any) -> Any:
    """Step two: confirm the previewed file, as the preview page's button does."""
    confirm = preview.context["confirm_form"]
    return admin_client.post(url(f"access_{model}_process_import"), confirm.initial, follow=True)


@pytest.fixture
def acl() -> dict[str, Any]:
    """A small ACL: an active and a blocked token, a fleet group, station grants and an all-stations grant."""
    fleet = TokenGroup.objects.create(name="fleet-north")
    acl_insert(station_id=STATION, driver_token=TOKEN)
    acl_insert(station_id=OTHER_STATION, driver_token=OTHER_TOKEN)
    blocked = DriverToken.objects.get(value=OTHER_TOKEN)
    blocked.status = DriverToken.Status.BLOCKED
    blocked.save()
    fleet_token = DriverToken.objects.create(value=THIRD_TOKEN, type=DriverToken.Type.APP, group=fleet)
    everywhere = Grant.objects.create(group=fleet, station=None, note="fleet everywhere")
    return {"fleet": fleet, "blocked": blocked, "fleet_token": fleet_token, "everywhere": everywhere}


# --- every list loads, searches and filters ------------------------------------------------------


@pytest.mark.parametrize(
    ("changelist", "query"),
    [
        ("access_station_changelist", {"q": HEX_STATION, "enabled__exact": "1"}),
        ("access_tokengroup_changelist", {"q": "fleet"}),
        ("access_drivertoken_changelist", {"q": "04A1", "status__exact": "active", "validity": "current"}),
        ("access_drivertoken_changelist", {"type__exact": "app", "validity": "expiring"}),
        ("access_grant_changelist", {"q": TOKEN, "state": "live", "where": "station", "holder": "token"}),
        ("access_grant_changelist", {"q": STATION.upper(), "state": "revoked", "where": "all"}),
        (
            "charging_chargingrequest_changelist",
            {"q": TOKEN, "status__exact": "allowed", "reason": "granted"},
        ),
        ("charging_chargingrequest_changelist", {"within": "1h", "station": STATION.upper(), "token": TOKEN}),
        ("charging_chargingrequest_changelist", {"day": "2026-01-31", "source__exact": "sync"}),
        ("clients_apiclient_changelist", {"q": "acme", "is_active__exact": "1"}),
        ("clients_apikey_changelist", {"q": "chg", "state": "live"}),
    ],
)
def test_every_changelist_loads_with_search_and_filters(
    admin_client: Client, acl: dict[str, Any], log_row: LogRow, changelist: str, query: dict[str, str]
) -> None:
    log_row(client=None).save()
    api_key_create(client=api_client_get_or_create(name="acme-charging"), scopes=["authorize"])

    plain = admin_client.get(url(changelist))
    filtered = admin_client.get(url(changelist), query)

    assert plain.status_code == 200
    assert filtered.status_code == 200
    # An unknown filter or lookup would have redirected (302, ?e=1) instead of listing.
    assert filtered.context["cl"].result_count <= plain.context["cl"].result_count


def test_filters_and_search_select_the_right_rows(admin_client: Client, acl: dict[str, Any]) -> None:
    tokens = admin_client.get(url("access_drivertoken_changelist"), {"status__exact": "blocked"})
    grants_everywhere = admin_client.get(url("access_grant_changelist"), {"where": "all"})
    # A station id typed in another accepted form finds the stored one.
    Station.objects.create(station_id=HEX_STATION_STORED, name="Depot 7")
    stations = admin_client.get(url("access_station_changelist"), {"q": HEX_STATION})

    assert [token.value for token in tokens.context["cl"].result_list] == [OTHER_TOKEN]
    assert list(grants_everywhere.context["cl"].result_list) == [acl["everywhere"]]
    assert [station.station_id for station in stations.context["cl"].result_list] == [HEX_STATION_STORED]


# --- bulk actions ---------------------------------------------------------------------------------


def test_bulk_block_and_unblock_tokens(admin_client: Client, acl: dict[str, Any]) -> None:
    token = DriverToken.objects.get(value=TOKEN)
    assert decide() == ("allowed", "granted")

    blocked = run_action(admin_client, "access_drivertoken_changelist", "block", [token.pk])

    assert "Blocked 1 token(s)." in blocked.content.decode()
    assert DriverToken.objects.get(pk=token.pk).status == DriverToken.Status.BLOCKED
    assert decide() == ("not_allowed", "token_blocked")

    run_action(admin_client, "access_drivertoken_changelist", "unblock", [token.pk, acl["blocked"].pk])

    assert set(DriverToken.objects.values_list("status", flat=True)) == {DriverToken.Status.ACTIVE}
    assert decide() == ("allowed", "granted")


def test_bulk_disable_and_enable_stations(admin_client: Client, acl: dict[str, Any]) -> None:
    run_action(admin_client, "access_station_changelist", "disable", [STATION])

    assert decide() == ("not_allowed", "station_disabled")

    run_action(admin_client, "access_station_changelist", "enable", [STATION])

    assert decide() == ("allowed", "granted")


def test_bulk_revoke_grants(admin_client: Client, acl: dict[str, Any]) -> None:
    grant = Grant.objects.get(token__value=TOKEN)

    response = run_action(admin_client, "access_grant_changelist", "revoke", [grant.pk, acl["everywhere"].pk])

    assert "Revoked 2 grant(s)." in response.content.decode()
    assert Grant.objects.filter(revoked_at=None).count() == 1  # only the blocked token's grant is left
    assert decide() == ("not_allowed", "no_grant")
    assert decide(station_id=OTHER_STATION, driver_token=THIRD_TOKEN) == ("not_allowed", "no_grant")


def test_tokens_and_grants_cannot_be_deleted(admin_client: Client, acl: dict[str, Any]) -> None:
    token = DriverToken.objects.get(value=TOKEN)
    grant = Grant.objects.get(token=token)

    assert admin_client.get(url("access_drivertoken_delete", token.pk)).status_code == 403
    assert admin_client.get(url("access_grant_delete", grant.pk)).status_code == 403
    page = admin_client.get(url("access_drivertoken_changelist")).content.decode()
    assert "delete_selected" not in page


# --- the add forms ----------------------------------------------------------------------------------


def test_token_and_grant_added_through_the_forms_allow_charging(
    admin_client: Client, admin_user: Any
) -> None:
    added = admin_client.post(
        url("access_drivertoken_add"),
        {"value": TOKEN, "type": "rfid", "status": "active", "note": "new card"},
        follow=True,
    )
    assert added.status_code == 200
    assert decide(station_id=HEX_STATION_STORED) == ("not_allowed", "no_grant")

    granted = admin_client.post(
        url("access_grant_add"), {"token": TOKEN, "station_id": HEX_STATION, "note": "depot"}, follow=True
    )

    assert granted.status_code == 200
    grant = Grant.objects.get()
    assert (grant.station_id, grant.created_by) == (HEX_STATION_STORED, admin_user)
    assert decide(station_id=HEX_STATION_STORED) == ("allowed", "granted")


def test_the_grant_form_names_what_is_wrong(admin_client: Client, acl: dict[str, Any]) -> None:
    unknown = admin_client.post(
        url("access_grant_add"), {"token": "no-such-token-0000000000", "station_id": STATION}
    )
    malformed = admin_client.post(url("access_grant_add"), {"token": TOKEN, "station_id": "station-7"})
    nowhere = admin_client.post(url("access_grant_add"), {"token": TOKEN})
    duplicate = admin_client.post(url("access_grant_add"), {"token": TOKEN, "station_id": STATION})

    assert "There is no token with this value" in unknown.content.decode()
    assert "station_id must be" in malformed.content.decode()
    assert "tick &#x27;Every station&#x27;" in nowhere.content.decode()
    assert "An identical live grant exists already" in duplicate.content.decode()
    assert Grant.objects.count() == 3


# --- CSV import and export --------------------------------------------------------------------------


def test_token_import_with_bad_rows_writes_nothing_and_lists_every_bad_row(
    admin_client: Client, acl: dict[str, Any]
) -> None:
    before = list(DriverToken.objects.values_list("value", "status", "note").order_by("value"))
    upload = csv_file(
        "tokens.csv",
        [
            ["value", "type", "status", "valid_until", "group", "note"],
            ["NEW-TOKEN-0000000000001", "rfid", "active", "", "", "good row"],
            ["no spaces allowed", "rfid", "active", "", "", "bad value"],
            ["NEW-TOKEN-0000000000002", "card", "paused", "", "", "bad type and status"],
            ["NEW-TOKEN-0000000000003", "app", "", "next tuesday", "no-such-fleet", "bad date and group"],
            [TOKEN, "rfid", "blocked", "", "", "good update"],
        ],
    )

    response = import_preview(admin_client, "drivertoken", upload)

    page = response.content.decode()
    assert response.status_code == 200
    assert "confirm_form" not in response.context or response.context["confirm_form"] is None
    invalid = response.context["result"].invalid_rows
    assert [row.number for row in invalid] == [2, 3, 4]
    assert "3 rows failed to validate: nothing was written" in page
    for message in (
        "driver_token must be 1 to 80 characters",
        "&#x27;card&#x27; is not one of rfid, app, other",
        "&#x27;paused&#x27; is not one of active, blocked",
        "&#x27;next tuesday&#x27; is not a date and time",
        "there is no token group named &#x27;no-such-fleet&#x27;",
    ):
        assert message in page
    assert list(DriverToken.objects.values_list("value", "status", "note").order_by("value")) == before


def test_grant_import_with_bad_rows_writes_nothing_and_lists_every_bad_row(
    admin_client: Client, acl: dict[str, Any]
) -> None:
    before = (Grant.objects.count(), Station.objects.count())
    upload = csv_file(
        "grants.csv",
        [
            ["token", "group", "station", "valid_from", "valid_until", "note"],
            [TOKEN, "", HEX_STATION, "", "", "good row, new station"],
            ["unknown-token-0000000000000", "", STATION, "", "", "unknown token"],
            [TOKEN, "", "not-a-station", "", "", "malformed station"],
            [TOKEN, "fleet-north", STATION, "", "", "both holders"],
            ["", "", STATION, "", "", "no holder"],
            [TOKEN, "", STATION, "2027-01-02", "2027-01-01", "empty window"],
        ],
    )

    response = import_preview(admin_client, "grant", upload)

    page = response.content.decode()
    assert [row.number for row in response.context["result"].invalid_rows] == [2, 3, 4, 5, 6]
    for message in (
        "there is no token &#x27;unknown-token-0000000000000&#x27;",
        "station_id must be",
        "a grant belongs to a token or to a group, not both",
        "name a token (or a group in the group column)",
        "must be later than valid_from",
    ):
        assert message in page
    assert (Grant.objects.count(), Station.objects.count()) == before


def test_a_file_with_a_missing_column_is_refused_before_any_row(
    admin_client: Client, acl: dict[str, Any]
) -> None:
    upload = csv_file("grants.csv", [["token", "station_id"], [TOKEN, STATION]])

    response = import_preview(admin_client, "grant", upload)

    page = response.content.decode()
    assert "missing columns: station" in page
    assert "unknown columns: station_id" in page
    assert response.context.get("confirm_form") is None


def test_good_token_and_grant_files_import_after_confirmation(
    admin_client: Client, admin_user: Any, acl: dict[str, Any]
) -> None:
    new_token = "NEW-TOKEN-0000000000001"
    tokens = csv_file(
        "tokens.csv",
        [
            ["value", "type", "status", "valid_until", "group", "note"],
            [new_token, "APP", "", "2099-12-31", "fleet-north", "imported"],
            [TOKEN, "rfid", "blocked", "", "", "lost card"],
        ],
    )
    preview = import_preview(admin_client, "drivertoken", tokens)
    assert DriverToken.objects.filter(value=new_token).count() == 0  # the preview wrote nothing

    done = import_confirm(admin_client, "drivertoken", preview)

    assert "Import finished: 1 new, 1 updated" in done.content.decode()
    token = DriverToken.objects.get(value=new_token)
    assert (token.type, token.status, token.group, token.note) == ("app", "active", acl["fleet"], "imported")
    assert token.valid_until is not None
    assert token.valid_until.isoformat() == "2099-12-31T00:00:00+00:00"
    assert decide() == ("not_allowed", "token_blocked")

    grant_rows = [
        ["token", "group", "station", "valid_from", "valid_until", "note"],
        [new_token, "", HEX_STATION, "", "", "new depot"],
        [OTHER_TOKEN, "", "", "", "2099-01-01T00:00:00Z", "everywhere until 2099"],
    ]
    done = import_confirm(
        admin_client, "grant", import_preview(admin_client, "grant", csv_file("g.csv", grant_rows))
    )

    assert "Import finished: 2 new" in done.content.decode()
    depot = Grant.objects.get(token=token)
    assert (depot.station_id, depot.created_by) == (HEX_STATION_STORED, admin_user)
    assert Grant.objects.filter(token__value=OTHER_TOKEN, station=None).exists()
    assert decide(station_id=HEX_STATION_STORED, driver_token=new_token) == ("allowed", "granted")

    # The same file again adds nothing: each row is the live grant it created.
    again = import_preview(admin_client, "grant", csv_file("g.csv", grant_rows))
    assert [row.import_type for row in again.context["result"].rows] == ["skip", "skip"]


def export_csv(
    admin_client: Client, model: str, resource: str, fields: list[str], query: str = ""
) -> list[dict[str, str]]:
    data = {"resource": "0", "format": "0", **{f"{resource}_{field}": "on" for field in fields}}
    response = admin_client.post(url(f"access_{model}_export") + query, data)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_export_returns_csv_rows_that_honour_the_list_filters(
    admin_client: Client, acl: dict[str, Any]
) -> None:
    token_fields = ["value", "type", "status", "valid_until", "group", "note"]
    everything = export_csv(admin_client, "drivertoken", "drivertokenresource", token_fields)
    blocked = export_csv(
        admin_client, "drivertoken", "drivertokenresource", token_fields, "?status__exact=blocked"
    )
    grant_fields = ["id", "token", "group", "station", "valid_from", "valid_until", "note", "revoked_at"]
    grants = export_csv(admin_client, "grant", "grantresource", grant_fields)

    assert sorted(row["value"] for row in everything) == sorted([TOKEN, OTHER_TOKEN, THIRD_TOKEN])
    assert blocked == [
        {
            "value": OTHER_TOKEN,
            "type": "rfid",
            "status": "blocked",
            "valid_until": "",
            "group": "",
            "note": "",
        }
    ]
    assert {(row["token"], row["group"], row["station"]) for row in grants} == {
        (TOKEN, "", STATION),
        (OTHER_TOKEN, "", OTHER_STATION),
        ("", "fleet-north", ""),
    }


# --- the decision log -----------------------------------------------------------------------------


def test_decision_log_is_read_only_searchable_and_never_counted_whole(
    admin_client: Client, log_row: LogRow, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [log_row(client=None) for _ in range(5)]
    ChargingRequest.objects.bulk_create(rows)
    monkeypatch.setattr(CappedCountPaginator, "cap", 3)

    listing = admin_client.get(url("charging_chargingrequest_changelist"))
    found = admin_client.get(url("charging_chargingrequest_changelist"), {"q": str(rows[2].request_id)})

    assert "more than 3 charging requests" in listing.content.decode()
    assert list(found.context["cl"].result_list) == [rows[2]]
    assert admin_client.get(url("charging_chargingrequest_add")).status_code == 403
    detail = admin_client.post(url("charging_chargingrequest_change", rows[0].pk), {"status": "invalid"})
    assert detail.status_code == 403
    assert ChargingRequest.objects.get(pk=rows[0].pk).status == Status.ALLOWED


def test_unknown_tokens_view_lists_refusals_and_adds_token_and_grant(
    admin_client: Client, log_row: LogRow
) -> None:
    unknown = "NEWCARD-00000000000000001"
    refusals = [
        log_row(client=None, driver_token=unknown, status=Status.NOT_ALLOWED, reason=Reason.UNKNOWN_TOKEN)
        for _ in range(3)
    ]
    old = log_row(
        client=None,
        driver_token="OLDCARD-00000000000000001",
        status=Status.NOT_ALLOWED,
        reason=Reason.UNKNOWN_TOKEN,
        requested_at=timezone.now() - timedelta(days=20),
    )
    ChargingRequest.objects.bulk_create([*refusals, old])
    view = url("charging_chargingrequest_unknown_tokens")
    assert decide(driver_token=unknown) == ("not_allowed", "unknown_token")

    listing = admin_client.get(view)

    sightings = listing.context["sightings"]
    assert [(s["driver_token"], s["station_id"], s["refusals"]) for s in sightings] == [(unknown, STATION, 3)]
    assert "OLDCARD" in admin_client.get(view, {"days": "30"}).content.decode()

    added = admin_client.post(view, {"sighting": [f"{unknown} {STATION}"]}, follow=True)

    assert "Added 1 token(s), each with a grant at the station where it was seen." in added.content.decode()
    assert decide(driver_token=unknown) == ("allowed", "granted")
    assert added.context["sightings"] == []  # a token added since is no longer unknown


# --- API clients and keys -------------------------------------------------------------------------


def test_a_new_api_key_is_shown_once_and_only_its_hash_is_stored(admin_client: Client) -> None:
    client = ApiClient.objects.create(name="acme-charging", callback_secret="s" * 32)
    assert admin_client.get(url("clients_apikey_add"), {"client": client.pk}).status_code == 200

    response = admin_client.post(
        url("clients_apikey_add"),
        {"client": client.pk, "name": "station backend", "scopes": ["authorize", "charging:write"]},
        follow=True,
    )

    match = re.search(
        r"<code id='new-api-key'>(chg_[0-9a-f]{12}_[A-Za-z0-9_-]{43})</code>", response.content.decode()
    )
    assert match, "the new key is shown after saving"
    plaintext = match.group(1)
    parsed = key_parse(plaintext)
    assert parsed is not None
    key = ApiKey.objects.get(client=client)
    assert (key.prefix, key.key_hash, key.scopes) == (
        parsed.prefix,
        secret_hash(parsed.secret),
        ["authorize", "charging:write"],
    )
    assert parsed.secret not in str(list(ApiKey.objects.values()))
    assert api_key_authenticate(presented=plaintext) == key
    # Shown once: neither the list nor the key's own page shows it again.
    assert plaintext not in admin_client.get(url("clients_apikey_changelist")).content.decode()
    assert plaintext not in admin_client.get(url("clients_apikey_change", key.pk)).content.decode()


def test_revoked_keys_stop_working(admin_client: Client) -> None:
    key, plaintext = api_key_create(
        client=api_client_get_or_create(name="acme-charging"), scopes=["authorize"]
    )

    response = run_action(admin_client, "clients_apikey_changelist", "revoke", [key.pk])

    assert "Revoked 1 key(s)." in response.content.decode()
    assert api_key_authenticate(presented=plaintext) is None
    found = admin_client.get(url("clients_apikey_changelist"), {"q": plaintext, "state": "revoked"})
    assert list(found.context["cl"].result_list) == [key]


def test_the_admin_index_names_every_model_in_plain_english(admin_client: Client) -> None:
    index = admin_client.get(url("index"))
    names = {model["name"] for app in index.context["app_list"] for model in app["models"]}

    assert {"Callback deliveries", "API clients", "API keys"} <= names
    assert not {"Callback deliverys", "Api clients", "Api keys"} & names


# --- edits through the services ----------------------------------------------------------------------


def test_editing_a_group_renames_it_and_refuses_a_name_taken(admin_client: Client) -> None:
    north = TokenGroup.objects.create(name="fleet-north")
    TokenGroup.objects.create(name="fleet-south")
    change = url("access_tokengroup_change", north.pk)
    renamed = admin_client.post(change, {"name": "  fleet-east ", "note": "moved"}, follow=True)
    assert renamed.status_code == 200
    north.refresh_from_db()
    assert (north.name, north.note) == ("fleet-east", "moved")
    taken = admin_client.post(change, {"name": "fleet-south", "note": ""})
    assert taken.status_code == 200  # the form again, with the reason, not a 500
    north.refresh_from_db()
    assert north.name == "fleet-east"


def test_narrowing_a_keys_scopes_in_the_admin_counts_at_once(admin_client: Client) -> None:
    client = api_client_get_or_create(name="platform-scopes")
    key, plaintext = api_key_create(client=client, scopes=["charging:write", "acl:read"], name="ops")
    assert api_key_authenticate(presented=plaintext) is not None  # now in this process's key cache
    response = admin_client.post(
        url("clients_apikey_change", key.pk),
        {"name": "ops-renamed", "scopes": ["acl:read"], "expires_at": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    key.refresh_from_db()
    assert (key.name, key.scopes) == ("ops-renamed", ["acl:read"])
    cached = api_key_authenticate(presented=plaintext)
    assert cached is not None
    assert cached.scopes == ["acl:read"]
