"""The ACL services and selectors: what every entry point (API, admin, insertACL, worker) relies on."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.access.models import DriverToken, Grant, Station, TokenGroup
from apps.access.policy import Decision, Reason, Status
from apps.access.selectors import GrantFilters, authorization_facts_get, authorization_facts_many, grants_page
from apps.access.services import (
    AclConflict,
    AclInsertOutcome,
    AclInvalid,
    GrantExists,
    acl_insert,
    authorization_decide,
    grant_create,
    grant_revoke,
    grant_update,
    station_create,
    station_disable,
    station_enable,
    station_update,
    token_block,
    token_create,
    token_group_create,
    token_unblock,
    token_update,
)

STATION = "5d1b6f3c-8a52-4c1e-9f0a-2b7d4e6c8a10"
OTHER_STATION = "0e6a1c9b-3f47-4d28-8b5e-7c2a9d1f4e36"
TOKEN = "04A1B2C3D4E5F6-driver.token_01"
OTHER_TOKEN = "other-driver-token-0000000"

pytestmark = pytest.mark.django_db


def decision(station_id: str = STATION, driver_token: str = TOKEN) -> Decision:
    return authorization_decide(station_id=station_id, driver_token=driver_token, at=timezone.now())


def verdict(station_id: str = STATION, driver_token: str = TOKEN) -> tuple[Status, Reason]:
    found = decision(station_id, driver_token)
    return found.status, found.reason


# --- stations and tokens ------------------------------------------------------------------------


def test_station_create_stores_the_normalized_id_and_refuses_twins_and_malformed_ids() -> None:
    created = station_create(station_id=STATION.replace("-", "").upper(), name="Depot")

    with pytest.raises(AclConflict):
        station_create(station_id=STATION)
    with pytest.raises(AclInvalid) as invalid:
        station_create(station_id="bad")
    assert created.station_id == STATION
    assert invalid.value.field == "station_id"
    assert list(Station.objects.values_list("station_id", "name")) == [(STATION, "Depot")]


def test_station_update_changes_only_what_is_given_and_disable_refuses_every_token() -> None:
    station = station_create(station_id=STATION, name="Depot", location="Hall B")
    grant_create(token=token_create(value=TOKEN), station=station)

    station_update(station=station, location="Hall C")
    station_disable(station=station)
    disabled = verdict()
    station_enable(station=station)

    station.refresh_from_db()
    assert (station.name, station.location, station.enabled) == ("Depot", "Hall C", True)
    assert disabled == (Status.NOT_ALLOWED, Reason.STATION_DISABLED)
    assert verdict() == (Status.ALLOWED, Reason.GRANTED)


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"value": "no spaces allowed"}, "value"), ({"value": TOKEN, "type": "card"}, "type")],
)
def test_token_create_names_the_bad_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(AclInvalid) as invalid:
        token_create(**fields)

    assert invalid.value.field == field
    assert not DriverToken.objects.exists()


def test_token_create_refuses_an_existing_value_and_group_create_an_existing_name() -> None:
    token_create(value=TOKEN, note="first")
    token_group_create(name="fleet-a")

    with pytest.raises(AclConflict):
        token_create(value=TOKEN, note="second")
    with pytest.raises(AclConflict):
        token_group_create(name=" fleet-a ")
    assert DriverToken.objects.get().note == "first"


def test_token_update_changes_only_what_is_given_and_none_clears() -> None:
    fleet = token_group_create(name="fleet-a")
    until = timezone.now() + timedelta(days=1)
    token = token_create(value=TOKEN, note="van 7", group=fleet, valid_until=until)

    token_update(token=token, valid_until=None)
    token.refresh_from_db()

    assert (token.note, token.group, token.valid_until) == ("van 7", fleet, None)
    token_update(token=token, group=None, note="")
    token.refresh_from_db()
    assert (token.note, token.group) == ("", None)


def test_blocking_refuses_the_token_with_its_grants_kept_and_unblocking_restores_it() -> None:
    token = token_create(value=TOKEN)
    grant_create(token=token, station=station_create(station_id=STATION))

    token_block(token=token)
    blocked = verdict()
    token_unblock(token=token)

    assert blocked == (Status.NOT_ALLOWED, Reason.TOKEN_BLOCKED)
    assert verdict() == (Status.ALLOWED, Reason.GRANTED)
    assert Grant.objects.filter(revoked_at=None).count() == 1


# --- grants -------------------------------------------------------------------------------------


def test_grant_create_needs_exactly_one_holder_and_a_non_empty_window() -> None:
    token = token_create(value=TOKEN)
    fleet = token_group_create(name="fleet-a")
    now = timezone.now()

    cases: list[dict[str, Any]] = [
        {},
        {"token": token, "group": fleet},
        {"token": token, "valid_from": now, "valid_until": now},
        {"token": token, "valid_from": now, "valid_until": now - timedelta(seconds=1)},
    ]
    for fields in cases:
        with pytest.raises(AclInvalid) as invalid:
            grant_create(station=None, **fields)
        assert invalid.value.field == ("valid_until" if "valid_until" in fields else "token")
    assert not Grant.objects.exists()


def test_an_identical_live_grant_is_not_created_twice_but_a_revoked_one_is_no_twin() -> None:
    token = token_create(value=TOKEN)
    station = station_create(station_id=STATION)
    first = grant_create(token=token, station=station)

    with pytest.raises(GrantExists) as twin:
        grant_create(token=token, station=station, note="again")
    grant_revoke(grant=first)
    renewed = grant_create(token=token, station=station)
    everywhere = grant_create(token=token, station=None)

    assert twin.value.grant == first
    assert len({first.pk, renewed.pk, everywhere.pk}) == 3


def test_revoking_ends_a_grant_and_revoking_again_keeps_the_first_time() -> None:
    token = token_create(value=TOKEN)
    granted = grant_create(token=token, station=station_create(station_id=STATION))
    first_time = timezone.now() - timedelta(minutes=1)

    grant_revoke(grant=granted, at=first_time)
    grant_revoke(grant=granted)

    assert Grant.objects.get().revoked_at == first_time
    assert verdict() == (Status.NOT_ALLOWED, Reason.NO_GRANT)


def test_grant_update_checks_the_merged_window_and_leaves_revoked_grants_alone() -> None:
    now = timezone.now()
    token = token_create(value=TOKEN)
    granted = grant_create(token=token, station=None, valid_until=now + timedelta(days=1))

    with pytest.raises(AclInvalid) as invalid:
        grant_update(grant=granted, valid_from=now + timedelta(days=2))
    grant_update(grant=granted, valid_until=None, note="open")
    grant_revoke(grant=granted)
    with pytest.raises(AclConflict):
        grant_update(grant=granted, note="again")

    granted.refresh_from_db()
    assert invalid.value.field == "valid_until"
    assert (granted.valid_from, granted.valid_until, granted.note) == (None, None, "open")


def test_group_and_all_stations_grants_decide_with_the_right_expiry() -> None:
    now = timezone.now()
    fleet = token_group_create(name="fleet-a")
    token = token_create(value=TOKEN, group=fleet, valid_until=now + timedelta(days=3))
    station = station_create(station_id=STATION)
    grant_create(group=fleet, station=station, valid_until=now + timedelta(hours=2))

    at_station = decision()
    grant_create(group=fleet, station=None, valid_until=now + timedelta(hours=4))
    both = decision()
    elsewhere = decision(OTHER_STATION)
    token_update(token=token, valid_until=now + timedelta(hours=1))

    assert (at_station.status, at_station.expires_at) == (Status.ALLOWED, now + timedelta(hours=2))
    assert (both.status, both.expires_at) == (Status.ALLOWED, now + timedelta(hours=4))
    assert (elsewhere.status, elsewhere.expires_at) == (Status.ALLOWED, now + timedelta(hours=4))
    assert decision().expires_at == now + timedelta(hours=1)


def test_expired_and_not_yet_valid_grants_say_so() -> None:
    now = timezone.now()
    token = token_create(value=TOKEN)
    station = station_create(station_id=STATION)
    old = grant_create(token=token, station=station, valid_until=now - timedelta(seconds=1))

    expired = verdict()
    grant_revoke(grant=old)
    grant_create(token=token, station=station, valid_from=now + timedelta(hours=1))

    assert expired == (Status.NOT_ALLOWED, Reason.GRANT_EXPIRED)
    assert verdict() == (Status.NOT_ALLOWED, Reason.GRANT_NOT_YET_VALID)


def test_the_facts_hold_only_live_grants_of_this_token_or_its_group_covering_this_station() -> None:
    fleet = token_group_create(name="fleet-a")
    token = token_create(value=TOKEN, group=fleet)
    other = token_create(value=OTHER_TOKEN)
    station = station_create(station_id=STATION)
    elsewhere = station_create(station_id=OTHER_STATION)
    grant_create(token=token, station=station, note="counts")
    grant_create(group=fleet, station=None, note="counts")
    grant_create(token=token, station=elsewhere)
    grant_create(group=fleet, station=elsewhere)
    grant_create(token=other, station=station)
    grant_create(token=other, station=None)
    grant_revoke(grant=grant_create(token=token, station=station, valid_until=timezone.now()))

    facts = authorization_facts_get(station_id=STATION, driver_token=TOKEN)

    assert sorted((g.station_id or "") for g in facts.grants) == ["", STATION]


def test_grants_page_active_uses_half_open_windows() -> None:
    now = timezone.now()
    token = token_create(value=TOKEN)
    starts_now = grant_create(token=token, station=None, valid_from=now)
    ends_now = grant_create(token=token, station=None, valid_until=now)

    active = grants_page(filters=GrantFilters(active=True), at=now, limit=10).items
    inactive = grants_page(filters=GrantFilters(active=False), at=now, limit=10).items

    assert (active, inactive) == ([starts_now], [ends_now])


# --- insertACL ----------------------------------------------------------------------------------


def test_insert_acl_creates_what_is_missing_and_answers_exists_for_an_identical_live_grant() -> None:
    first = acl_insert(station_id=STATION, driver_token=TOKEN)
    second = acl_insert(station_id=STATION, driver_token=TOKEN)

    assert (first, second) == (AclInsertOutcome.SUCCESS, AclInsertOutcome.EXISTS)
    assert (Station.objects.count(), DriverToken.objects.count(), Grant.objects.count()) == (1, 1, 1)
    assert verdict() == (Status.ALLOWED, Reason.GRANTED)


def test_insert_acl_sees_grants_made_elsewhere_and_ignores_revoked_or_windowed_ones() -> None:
    token = token_create(value=TOKEN)
    station = station_create(station_id=STATION)
    windowed = grant_create(token=token, station=station, valid_until=timezone.now() + timedelta(days=1))

    beside_windowed = acl_insert(station_id=STATION, driver_token=TOKEN)
    grant_revoke(grant=Grant.objects.exclude(pk=windowed.pk).get())
    after_revoke = acl_insert(station_id=STATION, driver_token=TOKEN)
    again = acl_insert(station_id=STATION, driver_token=TOKEN)

    assert (beside_windowed, after_revoke, again) == (
        AclInsertOutcome.SUCCESS,
        AclInsertOutcome.SUCCESS,
        AclInsertOutcome.EXISTS,
    )


# --- concurrency (separate connections, so the real database decides) ----------------------------


def _at_once(count: int, work: Callable[[], Any]) -> list[Any]:
    """Run `work` in `count` threads released together; each result, or the exception it raised."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work()
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread got
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_grants_create_one() -> None:
    token = token_create(value=TOKEN)
    station = station_create(station_id=STATION)

    results = _at_once(8, lambda: grant_create(token=token, station=station))

    created = [result for result in results if isinstance(result, Grant)]
    assert len(created) == 1, results
    assert all(isinstance(result, GrantExists) for result in results if result not in created), results
    assert Grant.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_insert_acl_of_a_new_pair_creates_one_of_each() -> None:
    results = _at_once(8, lambda: acl_insert(station_id=STATION, driver_token=TOKEN))

    assert sorted(results) == sorted([AclInsertOutcome.SUCCESS] + [AclInsertOutcome.EXISTS] * 7), results
    assert (Station.objects.count(), DriverToken.objects.count(), Grant.objects.count()) == (1, 1, 1)


# --- the decision reads only indexed rows --------------------------------------------------------


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _plan_nodes(child))]


def test_the_decision_reads_only_the_index_entries_it_needs() -> None:
    """Grants of the token and its group at 1,000 other stations, and 1,000 other tokens' all-stations
    grants, are in the table but not read: each probe names both index columns. The other tokens
    belong to 1,000 other groups, so the group's name is an index probe too, as in a real ACL."""
    fleet = TokenGroup.objects.create(name="fleet-a")
    token = DriverToken.objects.create(value=TOKEN, group=fleet)
    other_groups = TokenGroup.objects.bulk_create(
        TokenGroup(name=f"other-fleet-{n:04d}") for n in range(1000)
    )
    other_tokens = DriverToken.objects.bulk_create(
        DriverToken(value=f"other-driver-token-{n:08d}", group=other_groups[n]) for n in range(1000)
    )
    other_stations = Station.objects.bulk_create(
        Station(station_id=f"{n:08x}-0000-4000-8000-000000000000") for n in range(1000)
    )
    Station.objects.create(station_id=STATION)
    Grant.objects.bulk_create(
        [Grant(token=token, station=station) for station in other_stations]
        + [Grant(group=fleet, station=station) for station in other_stations]
        + [Grant(token=other, station=None) for other in other_tokens]
    )
    Grant.objects.create(token=token, station_id=STATION)
    Grant.objects.create(group=fleet, station=None)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE access_grant, access_drivertoken, access_tokengroup, access_station")
    with CaptureQueriesContext(connection) as captured:
        facts = authorization_facts_get(station_id=STATION, driver_token=TOKEN)

    nodes: list[dict[str, Any]] = []
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query['sql']}")
            nodes.extend(_plan_nodes(cursor.fetchone()[0][0]["Plan"]))

    assert len(facts.grants) == 2
    assert len(captured.captured_queries) == 1
    assert not [node for node in nodes if node["Node Type"] in ("Seq Scan", "Sort")], nodes
    probes = [node for node in nodes if "Index Name" in node]
    grant_probes = [node for node in probes if node["Index Name"].startswith("grant_")]
    # All but the token's, its group's (for the name) and the station's lookups.
    assert len(grant_probes) == len(probes) - 3, probes
    assert all(node["Node Type"] == "Bitmap Index Scan" for node in grant_probes), grant_probes
    assert {node["Index Name"] for node in grant_probes} == {"grant_token_station", "grant_group_station"}
    assert all("station_id" in node["Index Cond"] for node in grant_probes), grant_probes
    assert sum(node["Actual Rows"] for node in grant_probes) == 2, grant_probes


def test_a_batch_probes_the_indexes_before_the_acl_was_ever_analyzed() -> None:
    """A freshly loaded ACL has no statistics until autovacuum's first ANALYZE (up to a minute after
    the load). With plain joins PostgreSQL then joined a batch against every grant of the table (a
    batch of 30 pairs: 25 ms here); each pair's lookups must stay index probes whatever the
    statistics say."""
    tokens = DriverToken.objects.bulk_create(
        DriverToken(value=f"fresh-driver-token-{n:08d}") for n in range(2000)
    )
    stations = Station.objects.bulk_create(
        Station(station_id=f"{n:08x}-0000-4000-8000-00000000f5e5") for n in range(200)
    )
    Grant.objects.bulk_create(
        Grant(token=token, station=stations[(n + k) % len(stations)])
        for n, token in enumerate(tokens)
        for k in (0, 1)
    )
    with connection.cursor() as cursor:
        # What a never-analyzed table looks like to the planner, whatever an earlier test left.
        cursor.execute(
            "DELETE FROM pg_statistic WHERE starelid IN "
            "('access_grant'::regclass, 'access_drivertoken'::regclass, 'access_station'::regclass)"
        )
    pairs = [(stations[n % len(stations)].station_id, tokens[n].value) for n in range(30)]
    with CaptureQueriesContext(connection) as captured:
        facts = authorization_facts_many(pairs=pairs)

    (query,) = captured.captured_queries
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query['sql']}")
        nodes = _plan_nodes(cursor.fetchone()[0][0]["Plan"])

    assert all(len(facts[pair].grants) == 1 for pair in pairs), facts
    scanned = {node.get("Relation Name") for node in nodes if node["Node Type"] == "Seq Scan"}
    assert not scanned & {"access_grant", "access_drivertoken", "access_station"}, nodes
    grant_reads = [node for node in nodes if node.get("Relation Name") == "access_grant"]
    assert sum(node["Actual Rows"] * node["Actual Loops"] for node in grant_reads) == len(pairs), grant_reads
