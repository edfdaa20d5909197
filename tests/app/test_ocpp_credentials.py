"""A station's OCPP credentials: set through the API and the admin, stored only as a salted hash, checked
by the gateway's login; and how the gateway's token decisions reach the decision log."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.access.models import Station
from apps.access.policy import Reason, Status
from apps.access.services import grant_create, station_create, token_create, token_group_create
from apps.charging.models import ChargingRequest
from apps.clients.services import api_client_get_or_create, api_key_create
from apps.ocpp.services import LoginRefused, StationLogin, station_login, token_authorize

STATION = "5d1b6f3c-8a52-4c1e-9f0a-2b7d4e6c8a10"
OTHER_STATION = "0e6a1c9b-3f47-4d28-8b5e-7c2a9d1f4e36"
IDENTITY = "CP-DEPOT-0001"
OTHER_IDENTITY = "CP-DEPOT-0002"
PASSWORD = "typed-ocpp-password-0001"  # 24 characters
OTHER_PASSWORD = "another-ocpp-password-02"
RFID_UID = "04A1B2C3"  # an 8-hex-digit RFID card UID, as stations send it
GENERATED = re.compile(r"^[A-Za-z0-9_-]{40}$")  # what password_generate makes

pytestmark = pytest.mark.django_db


@dataclass
class Api:
    """The test client with one API key presented as a bearer token."""

    http: Client
    key: str

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def get(self, path: str) -> Any:
        return self.http.get(path, headers=self._headers())

    def post(self, path: str, body: Any) -> Any:
        return self.http.post(
            path, data=json.dumps(body), content_type="application/json", headers=self._headers()
        )

    def put(self, path: str, body: Any) -> Any:
        return self.http.put(
            path, data=json.dumps(body), content_type="application/json", headers=self._headers()
        )

    def patch(self, path: str, body: Any) -> Any:
        return self.http.patch(
            path, data=json.dumps(body), content_type="application/json", headers=self._headers()
        )


@pytest.fixture
def api(client: Client, db: None) -> Api:
    api_client = api_client_get_or_create(name="acl-operator")
    return Api(client, api_key_create(client=api_client, scopes=["acl:read", "acl:write"])[1])


def station_url(station_id: str = STATION) -> str:
    return f"/api/v1/stations/{station_id}"


def ocpp_url(station_id: str = STATION) -> str:
    return f"/api/v1/stations/{station_id}/ocpp"


def created(api: Api, station_id: str = STATION, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/v1/stations", {"station_id": station_id, **fields})
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body


def rotated(api: Api, body: dict[str, Any], station_id: str = STATION) -> dict[str, Any]:
    response = api.put(ocpp_url(station_id), body)
    assert response.status_code == 200, response.content
    answer: dict[str, Any] = response.json()
    return answer


def invalid_fields(response: Any) -> set[str]:
    assert response.status_code == 422, response.content
    return {str(error["loc"][-1]) for error in response.json()["detail"]}


def refusal(identity: str, password: str | None) -> int:
    """The HTTP status the gateway's login refuses with; fails the test if the login succeeds."""
    with pytest.raises(LoginRefused) as refused:
        station_login(identity=identity, password=password)
    return refused.value.status


def stored_hash(station_id: str = STATION) -> str:
    return Station.objects.get(station_id=station_id).ocpp_password_hash


# --- the API: create, read, rotate -----------------------------------------------------------------


def test_a_station_created_with_an_identity_gets_a_generated_password_shown_only_in_the_answer(
    api: Api,
) -> None:
    body = created(api, name="Depot 1", ocpp_identity=IDENTITY)

    password = body["ocpp_password"]
    assert GENERATED.fullmatch(password), password
    assert (body["ocpp_identity"], body["has_ocpp_password"]) == (IDENTITY, True)
    detail = api.get(station_url())
    assert detail.status_code == 200
    assert detail.json()["ocpp_identity"] == IDENTITY
    assert detail.json()["has_ocpp_password"] is True
    assert "ocpp_password" not in detail.json()
    assert password not in detail.content.decode()
    listed = api.get("/api/v1/stations")
    assert listed.status_code == 200
    assert password not in listed.content.decode()
    assert station_login(identity=IDENTITY, password=password) == StationLogin(STATION, IDENTITY)


def test_a_typed_password_is_answered_once_and_only_its_salted_hash_is_stored(api: Api) -> None:
    body = created(api, ocpp_identity=IDENTITY, ocpp_password=PASSWORD)
    created(api, OTHER_STATION, ocpp_identity=OTHER_IDENTITY, ocpp_password=PASSWORD)

    assert body["ocpp_password"] == PASSWORD
    stored = stored_hash()
    assert stored.startswith("sha256$")
    assert PASSWORD not in stored
    assert PASSWORD not in str(list(Station.objects.values()))
    # Salted: the same password stored twice is two different hashes.
    assert stored != stored_hash(OTHER_STATION)
    assert station_login(identity=IDENTITY, password=PASSWORD).station_id == STATION
    assert station_login(identity=OTHER_IDENTITY, password=PASSWORD).station_id == OTHER_STATION


def test_two_stations_created_without_a_password_get_different_ones(api: Api) -> None:
    first = created(api, ocpp_identity=IDENTITY)["ocpp_password"]
    second = created(api, OTHER_STATION, ocpp_identity=OTHER_IDENTITY)["ocpp_password"]

    assert first != second
    assert refusal(IDENTITY, second) == 401


def test_a_station_created_without_an_identity_has_no_ocpp_credentials(api: Api) -> None:
    body = created(api, name="REST only")

    assert (body["ocpp_identity"], body["has_ocpp_password"], body["ocpp_password"]) == (None, False, None)
    assert stored_hash() == ""


def test_a_password_without_an_identity_is_refused_and_creates_no_station(api: Api) -> None:
    response = api.post("/api/v1/stations", {"station_id": STATION, "ocpp_password": PASSWORD})

    assert invalid_fields(response) == {"ocpp_password"}
    assert not Station.objects.filter(station_id=STATION).exists()


def test_rotating_the_password_answers_the_new_one_once_and_the_old_one_stops_working(api: Api) -> None:
    old = created(api, ocpp_identity=IDENTITY)["ocpp_password"]
    hash_before = stored_hash()

    answer = rotated(api, {"ocpp_identity": IDENTITY})

    new = answer["ocpp_password"]
    assert answer["ocpp_identity"] == IDENTITY
    assert GENERATED.fullmatch(new), new
    assert new != old
    assert stored_hash() != hash_before
    assert new not in stored_hash()
    assert refusal(IDENTITY, old) == 401
    assert station_login(identity=IDENTITY, password=new) == StationLogin(STATION, IDENTITY)
    assert new not in api.get(station_url()).content.decode()


def test_setting_a_typed_password_and_a_new_identity_moves_the_login_to_them(api: Api) -> None:
    old = created(api, ocpp_identity=IDENTITY)["ocpp_password"]

    answer = rotated(api, {"ocpp_identity": OTHER_IDENTITY, "ocpp_password": OTHER_PASSWORD})

    assert answer == {"ocpp_identity": OTHER_IDENTITY, "ocpp_password": OTHER_PASSWORD}
    assert station_login(identity=OTHER_IDENTITY, password=OTHER_PASSWORD).station_id == STATION
    assert refusal(OTHER_IDENTITY, old) == 401
    assert refusal(IDENTITY, old) == 401
    assert refusal(IDENTITY, OTHER_PASSWORD) == 401
    assert api.get(station_url()).json()["ocpp_identity"] == OTHER_IDENTITY


def test_a_station_without_credentials_can_be_enrolled_later(api: Api) -> None:
    created(api)

    answer = rotated(api, {"ocpp_identity": IDENTITY})

    assert station_login(identity=IDENTITY, password=answer["ocpp_password"]).station_id == STATION
    assert api.get(station_url()).json()["has_ocpp_password"] is True


def test_a_null_identity_takes_the_station_off_ocpp(api: Api) -> None:
    password = created(api, ocpp_identity=IDENTITY)["ocpp_password"]

    answer = rotated(api, {"ocpp_identity": None})

    assert answer == {"ocpp_identity": None, "ocpp_password": None}
    detail = api.get(station_url()).json()
    assert (detail["ocpp_identity"], detail["has_ocpp_password"]) == (None, False)
    assert stored_hash() == ""
    assert refusal(IDENTITY, password) == 401


def test_a_null_identity_with_a_password_is_refused_and_keeps_the_credentials(api: Api) -> None:
    password = created(api, ocpp_identity=IDENTITY)["ocpp_password"]

    response = api.put(ocpp_url(), {"ocpp_identity": None, "ocpp_password": OTHER_PASSWORD})

    assert invalid_fields(response) == {"ocpp_password"}
    assert station_login(identity=IDENTITY, password=password).station_id == STATION


def test_the_identity_is_required_in_the_credentials_body(api: Api) -> None:
    created(api, ocpp_identity=IDENTITY)

    assert invalid_fields(api.put(ocpp_url(), {"ocpp_password": OTHER_PASSWORD})) == {"ocpp_identity"}


def test_credentials_of_an_unknown_station_are_404(api: Api) -> None:
    response = api.put(ocpp_url(OTHER_STATION), {"ocpp_identity": IDENTITY})

    assert response.status_code == 404
    assert not Station.objects.filter(ocpp_identity=IDENTITY).exists()


@pytest.mark.parametrize(
    "body",
    [
        {"ocpp_identity": OTHER_IDENTITY},
        {"ocpp_password": OTHER_PASSWORD},
        {"ocpp_identity": None, "name": "x"},
    ],
)
def test_a_patch_with_ocpp_credentials_is_422_pointing_to_the_put_and_changes_nothing(
    api: Api, body: dict[str, Any]
) -> None:
    password = created(api, ocpp_identity=IDENTITY)["ocpp_password"]

    response = api.patch(f"/api/v1/stations/{STATION}", body)

    assert response.status_code == 422
    errors = response.json()["detail"]
    assert {str(error["loc"][-1]) for error in errors} == {key for key in body if key.startswith("ocpp")}
    assert all("PUT /api/v1/stations/{station_id}/ocpp" in error["msg"] for error in errors)
    station = Station.objects.get(station_id=STATION)
    assert (station.ocpp_identity, station.name) == (IDENTITY, "")
    assert station_login(identity=IDENTITY, password=password).station_id == STATION


def test_the_login_is_refused_alike_for_an_unknown_identity_a_wrong_password_and_none(api: Api) -> None:
    password = created(api, ocpp_identity=IDENTITY)["ocpp_password"]

    assert refusal("CP-NOBODY", password) == 401
    assert refusal(IDENTITY, password[:-1] + ("x" if password[-1] != "x" else "y")) == 401
    assert refusal(IDENTITY, None) == 401
    assert refusal(IDENTITY, "") == 401
    assert station_login(identity=IDENTITY, password=password).station_id == STATION


def test_a_disabled_station_that_knows_its_password_is_refused_with_403(api: Api) -> None:
    password = created(api, ocpp_identity=IDENTITY)["ocpp_password"]

    assert api.patch(station_url(), {"enabled": False}).status_code == 200

    assert refusal(IDENTITY, password) == 403
    assert refusal(IDENTITY, OTHER_PASSWORD) == 401  # a wrong password still learns nothing


# --- the API: conflicts and malformed credentials -----------------------------------------------------


def test_an_identity_taken_by_another_station_is_409_on_create_and_no_station_is_added(api: Api) -> None:
    created(api, ocpp_identity=IDENTITY)

    response = api.post("/api/v1/stations", {"station_id": OTHER_STATION, "ocpp_identity": IDENTITY})

    assert response.status_code == 409, response.content
    assert api.get(station_url(OTHER_STATION)).status_code == 404


def test_an_identity_taken_by_another_station_is_409_on_rotate_and_both_keep_their_credentials(
    api: Api,
) -> None:
    first = created(api, ocpp_identity=IDENTITY)["ocpp_password"]
    second = created(api, OTHER_STATION, ocpp_identity=OTHER_IDENTITY)["ocpp_password"]

    response = api.put(ocpp_url(OTHER_STATION), {"ocpp_identity": IDENTITY, "ocpp_password": PASSWORD})

    assert response.status_code == 409, response.content
    assert PASSWORD not in response.content.decode()
    assert api.get(station_url(OTHER_STATION)).json()["ocpp_identity"] == OTHER_IDENTITY
    assert station_login(identity=IDENTITY, password=first).station_id == STATION
    assert station_login(identity=OTHER_IDENTITY, password=second).station_id == OTHER_STATION


BAD_IDENTITIES = [
    pytest.param("CP 0001", id="space"),
    pytest.param("CP:0001", id="colon"),
    pytest.param("depot/CP-0001", id="slash"),
    pytest.param("C" * 49, id="49-chars"),
    pytest.param("", id="empty"),
    pytest.param("CP-0001\n", id="trailing-newline"),
    pytest.param("CP-Ä001", id="non-ascii"),
]
BAD_PASSWORDS = [
    pytest.param("p" * 15, id="15-chars"),
    pytest.param("p" * 41, id="41-chars"),
    pytest.param("", id="empty"),
    pytest.param("sixteen char pwd", id="space"),
    pytest.param("password-with-ümlaut", id="non-ascii"),
]


@pytest.mark.parametrize("identity", BAD_IDENTITIES)
def test_a_malformed_identity_is_422_naming_it_on_create_and_on_rotate(api: Api, identity: str) -> None:
    on_create = api.post("/api/v1/stations", {"station_id": STATION, "ocpp_identity": identity})
    assert invalid_fields(on_create) == {"ocpp_identity"}
    assert not Station.objects.exists()

    created(api, ocpp_identity=IDENTITY, ocpp_password=PASSWORD)
    on_rotate = api.put(ocpp_url(), {"ocpp_identity": identity})

    assert invalid_fields(on_rotate) == {"ocpp_identity"}
    assert station_login(identity=IDENTITY, password=PASSWORD).station_id == STATION


@pytest.mark.parametrize("password", BAD_PASSWORDS)
def test_a_malformed_password_is_422_naming_it_on_create_and_on_rotate(api: Api, password: str) -> None:
    on_create = api.post(
        "/api/v1/stations", {"station_id": STATION, "ocpp_identity": IDENTITY, "ocpp_password": password}
    )
    assert invalid_fields(on_create) == {"ocpp_password"}
    assert not Station.objects.exists()

    created(api, ocpp_identity=IDENTITY, ocpp_password=PASSWORD)
    on_rotate = api.put(ocpp_url(), {"ocpp_identity": IDENTITY, "ocpp_password": password})

    assert invalid_fields(on_rotate) == {"ocpp_password"}
    assert station_login(identity=IDENTITY, password=PASSWORD).station_id == STATION


@pytest.mark.parametrize(
    ("identity", "password"),
    [
        pytest.param("C" * 48, "p" * 16, id="longest-identity-shortest-password"),
        pytest.param("!~#$%&*+.=?@^_|", "~" * 40, id="punctuation-and-longest-password"),
    ],
)
def test_credentials_at_the_edges_of_the_rules_are_accepted(api: Api, identity: str, password: str) -> None:
    created(api, ocpp_identity=identity, ocpp_password=password)

    assert station_login(identity=identity, password=password).station_id == STATION


# --- the admin ------------------------------------------------------------------------------------------


def change_url(station_id: str = STATION) -> str:
    return reverse("admin:access_station_change", args=[station_id])


def change_form(**fields: str) -> dict[str, str]:
    """The station change form as a browser posts it: name, location, enabled and the OCPP fields."""
    return {"name": "Depot 1", "location": "Hall B", "enabled": "on", "ocpp_identity": "", **fields}


def generated_in(response: Any, identity: str) -> str:
    """The generated password the message after saving shows."""
    found = re.search(
        rf"OCPP password of {re.escape(identity)}: (\S+) \(shown this once", response.content.decode()
    )
    assert found, "the generated password is shown after saving"
    return found.group(1)


def test_the_admin_sets_an_identity_with_a_typed_password_that_the_login_accepts(
    admin_client: Client,
) -> None:
    station_create(station_id=STATION)

    response = admin_client.post(
        change_url(), change_form(ocpp_identity=IDENTITY, ocpp_password=PASSWORD), follow=True
    )

    assert response.status_code == 200
    assert response.redirect_chain, response.content.decode()[:2000]
    assert PASSWORD not in response.content.decode()
    station = Station.objects.get(station_id=STATION)
    assert (station.ocpp_identity, station.name, station.location) == (IDENTITY, "Depot 1", "Hall B")
    assert PASSWORD not in station.ocpp_password_hash
    assert station_login(identity=IDENTITY, password=PASSWORD) == StationLogin(STATION, IDENTITY)
    assert PASSWORD not in admin_client.get(change_url()).content.decode()


def test_the_admin_generates_a_password_shows_it_once_and_the_login_accepts_it(
    admin_client: Client,
) -> None:
    station_create(station_id=STATION)

    response = admin_client.post(
        change_url(), change_form(ocpp_identity=IDENTITY, ocpp_password_generate="on"), follow=True
    )

    password = generated_in(response, IDENTITY)
    assert GENERATED.fullmatch(password), password
    assert password not in stored_hash()
    assert station_login(identity=IDENTITY, password=password) == StationLogin(STATION, IDENTITY)
    # Shown once: neither the station's page nor the list shows it again.
    assert password not in admin_client.get(change_url()).content.decode()
    changelist = admin_client.get(reverse("admin:access_station_changelist"))
    assert password not in changelist.content.decode()


def test_generating_again_in_the_admin_replaces_the_old_password(admin_client: Client) -> None:
    station_create(station_id=STATION)
    first = generated_in(
        admin_client.post(
            change_url(), change_form(ocpp_identity=IDENTITY, ocpp_password_generate="on"), follow=True
        ),
        IDENTITY,
    )

    second = generated_in(
        admin_client.post(
            change_url(), change_form(ocpp_identity=IDENTITY, ocpp_password_generate="on"), follow=True
        ),
        IDENTITY,
    )

    assert second != first
    assert refusal(IDENTITY, first) == 401
    assert station_login(identity=IDENTITY, password=second).station_id == STATION


def test_the_admin_add_form_creates_a_station_with_a_generated_password(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:access_station_add"),
        {**change_form(ocpp_identity=IDENTITY, ocpp_password_generate="on"), "station_id": STATION.upper()},
        follow=True,
    )

    password = generated_in(response, IDENTITY)
    assert station_login(identity=IDENTITY, password=password) == StationLogin(STATION, IDENTITY)


def test_saving_the_admin_form_without_password_fields_keeps_the_password(admin_client: Client) -> None:
    station_create(station_id=STATION)
    admin_client.post(change_url(), change_form(ocpp_identity=IDENTITY, ocpp_password=PASSWORD))
    hash_before = stored_hash()

    response = admin_client.post(change_url(), change_form(ocpp_identity=IDENTITY, name="Depot renamed"))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Station.objects.get(station_id=STATION).name == "Depot renamed"
    assert stored_hash() == hash_before
    assert station_login(identity=IDENTITY, password=PASSWORD).station_id == STATION


def test_renaming_the_identity_in_the_admin_keeps_the_password(admin_client: Client) -> None:
    station_create(station_id=STATION)
    admin_client.post(change_url(), change_form(ocpp_identity=IDENTITY, ocpp_password=PASSWORD))

    response = admin_client.post(change_url(), change_form(ocpp_identity=OTHER_IDENTITY))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert station_login(identity=OTHER_IDENTITY, password=PASSWORD).station_id == STATION
    assert refusal(IDENTITY, PASSWORD) == 401


def test_clearing_the_identity_in_the_admin_takes_the_station_off_ocpp(admin_client: Client) -> None:
    station_create(station_id=STATION)
    admin_client.post(change_url(), change_form(ocpp_identity=IDENTITY, ocpp_password=PASSWORD))

    response = admin_client.post(change_url(), change_form(ocpp_identity=""))

    assert response.status_code == 302, response.content.decode()[:2000]
    station = Station.objects.get(station_id=STATION)
    assert (station.ocpp_identity, station.ocpp_password_hash) == (None, "")
    assert refusal(IDENTITY, PASSWORD) == 401


@pytest.mark.parametrize(
    ("fields", "field_in_error"),
    [
        pytest.param(
            {"ocpp_identity": IDENTITY, "ocpp_password": PASSWORD, "ocpp_password_generate": "on"},
            "ocpp_password_generate",
            id="typed-and-generate",
        ),
        pytest.param({"ocpp_password": PASSWORD}, "ocpp_identity", id="password-without-identity"),
        pytest.param(
            {"ocpp_identity": "CP 0001", "ocpp_password": PASSWORD}, "ocpp_identity", id="bad-identity"
        ),
        pytest.param(
            {"ocpp_identity": IDENTITY, "ocpp_password": "short"}, "ocpp_password", id="short-password"
        ),
        pytest.param(
            {"ocpp_identity": OTHER_IDENTITY, "ocpp_password": PASSWORD}, "ocpp_identity", id="identity-taken"
        ),
    ],
)
def test_the_admin_form_refuses_bad_credentials_and_changes_nothing(
    admin_client: Client, fields: dict[str, str], field_in_error: str
) -> None:
    station_create(station_id=STATION)
    other = station_create(station_id=OTHER_STATION)
    other.ocpp_identity = OTHER_IDENTITY
    other.save()

    response = admin_client.post(change_url(), change_form(**fields))

    assert response.status_code == 200  # the form again, with the reason
    assert field_in_error in response.context["adminform"].form.errors
    station = Station.objects.get(station_id=STATION)
    assert (station.ocpp_identity, station.ocpp_password_hash, station.name) == (None, "", "")


# --- the gateway's token decisions --------------------------------------------------------------------


@pytest.mark.parametrize(
    "id_tag",
    [
        pytest.param("has space", id="space"),
        pytest.param("tag#0001", id="hash-sign"),
        pytest.param("T" * 81, id="81-chars"),
        pytest.param("", id="empty"),
    ],
)
def test_a_token_outside_the_acl_rule_is_invalid_and_not_logged(id_tag: str) -> None:
    station_create(station_id=STATION)

    authorization = token_authorize(station_id=STATION, id_token=id_tag)

    assert (authorization.decision.status, authorization.decision.reason) == (
        Status.INVALID,
        Reason.INVALID_TOKEN_FORMAT,
    )
    assert (authorization.group, authorization.request_id) == (None, None)
    assert not ChargingRequest.objects.exists()


def test_a_granted_rfid_uid_is_allowed_and_logged_once_as_an_ocpp_decision() -> None:
    station = station_create(station_id=STATION)
    grant_create(token=token_create(value=RFID_UID), station=station)

    authorization = token_authorize(station_id=STATION, id_token=RFID_UID)

    assert (authorization.decision.status, authorization.decision.reason) == (Status.ALLOWED, Reason.GRANTED)
    row = ChargingRequest.objects.get()
    assert row.request_id == authorization.request_id
    assert (row.source, row.station_id, row.driver_token) == ("ocpp", STATION, RFID_UID)
    assert (row.status, row.reason, row.client_id, row.callback_url) == ("allowed", "granted", None, "")


def test_an_rfid_uid_without_a_grant_here_is_refused_and_logged() -> None:
    station_create(station_id=STATION)
    grant_create(token=token_create(value=RFID_UID), station=station_create(station_id=OTHER_STATION))

    authorization = token_authorize(station_id=STATION, id_token=RFID_UID)

    assert (authorization.decision.status, authorization.decision.reason) == (
        Status.NOT_ALLOWED,
        Reason.NO_GRANT,
    )
    row = ChargingRequest.objects.get()
    assert (row.request_id, row.source, row.status, row.reason) == (
        authorization.request_id,
        "ocpp",
        "not_allowed",
        "no_grant",
    )


def test_a_token_of_a_group_answers_the_group_for_the_parent_id_tag() -> None:
    station = station_create(station_id=STATION)
    fleet = token_group_create(name="fleet-north")
    token_create(value=RFID_UID, group=fleet)
    grant_create(group=fleet, station=station)

    authorization = token_authorize(station_id=STATION, id_token=RFID_UID)

    assert authorization.decision.status == Status.ALLOWED
    assert authorization.group == "fleet-north"
