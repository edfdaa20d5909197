"""Our decisions in OCPP's words (README "OCPP"), the credentials' rules, the per-connection bucket."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apps.access.credentials import (
    identity_check,
    password_check,
    password_generate,
    password_hash,
    password_matches,
)
from apps.access.policy import Decision, Reason, Status
from apps.ocpp.gateway import CallBucket, _basic_auth, _unique_id_of
from apps.ocpp.protocol import NoAnswer, id_tag_info, id_token_info, ocpp_time, status_text

UNTIL = datetime(2027, 1, 31, 12, 0, tzinfo=UTC)


def refused(reason: Reason) -> Decision:
    return Decision(Status.NOT_ALLOWED, reason)


@pytest.mark.parametrize(
    ("reason", "status16", "status201"),
    [
        (Reason.UNKNOWN_TOKEN, "Invalid", "Unknown"),
        (Reason.TOKEN_BLOCKED, "Blocked", "Blocked"),
        (Reason.TOKEN_EXPIRED, "Expired", "Expired"),
        (Reason.STATION_DISABLED, "Invalid", "NotAtThisLocation"),
        (Reason.NO_GRANT, "Invalid", "NotAtThisLocation"),
        (Reason.GRANT_NOT_YET_VALID, "Invalid", "NotAtThisTime"),
        (Reason.GRANT_EXPIRED, "Expired", "NotAtThisTime"),
        (Reason.INVALID_TOKEN_FORMAT, "Invalid", "Invalid"),
    ],
)
def test_each_refusal_has_its_status_in_both_versions(reason: Reason, status16: str, status201: str) -> None:
    info16 = id_tag_info(refused(reason), group="fleet")
    info201 = id_token_info(refused(reason), group="fleet")

    assert (info16.status, info201.status) == (status16, status201)
    # No expiry on a refusal: a station must not cache "refused until".
    assert info16.expiry_date is None
    assert info201.cache_expiry_date_time is None


def test_an_acceptance_carries_its_expiry_and_the_tokens_group() -> None:
    allowed = Decision(Status.ALLOWED, Reason.GRANTED, expires_at=UNTIL)

    info16 = id_tag_info(allowed, group="fleet-acme")
    info201 = id_token_info(allowed, group="fleet-acme")

    assert (info16.status, info16.expiry_date, info16.parent_id_tag) == (
        "Accepted",
        "2027-01-31T12:00:00.000Z",
        "fleet-acme",
    )
    assert (info201.status, info201.cache_expiry_date_time) == ("Accepted", "2027-01-31T12:00:00.000Z")
    assert info201.group_id_token is not None
    assert (info201.group_id_token.id_token, info201.group_id_token.type) == ("fleet-acme", "Central")


def test_an_open_ended_acceptance_and_a_token_without_group_leave_those_fields_out() -> None:
    allowed = Decision(Status.ALLOWED, Reason.GRANTED)

    assert id_tag_info(allowed, group=None).expiry_date is None
    assert id_tag_info(allowed, group=None).parent_id_tag is None
    assert id_token_info(allowed, group=None).group_id_token is None


def test_a_group_name_too_long_for_the_version_is_left_out_not_cut() -> None:
    allowed = Decision(Status.ALLOWED, Reason.GRANTED)
    name = "g" * 21

    assert id_tag_info(allowed, group=name).parent_id_tag is None
    group_201 = id_token_info(allowed, group=name).group_id_token
    assert group_201 is not None
    assert group_201.id_token == name
    assert id_token_info(allowed, group="g" * 37).group_id_token is None


def test_a_decision_no_status_describes_is_no_answer() -> None:
    with pytest.raises(NoAnswer):
        id_tag_info(Decision(Status.UNKNOWN, Reason.BACKEND_UNAVAILABLE), group=None)
    with pytest.raises(NoAnswer):
        id_token_info(Decision(Status.UNKNOWN, Reason.TIMEOUT), group=None)


def test_times_are_utc_with_a_z_and_statuses_read_as_the_admin_shows_them() -> None:
    assert ocpp_time(datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=UTC)) == "2026-12-02T10:00:00.123Z"
    assert (
        status_text(connector_id=1, status="Faulted", error_code="GroundFailure")
        == "connector 1: Faulted (GroundFailure)"
    )
    assert status_text(connector_id=0, status="Available", error_code="NoError") == "station: Available"


@pytest.mark.parametrize("identity", ["EVB-P2023-0017", "A", "x" * 48, "cp#1!~"])
def test_identities_stations_are_configured_with_are_accepted(identity: str) -> None:
    assert identity_check(identity) == identity


@pytest.mark.parametrize("identity", ["", "x" * 49, "has space", "a:b", "a/b", "ünï", "tab\there"])
def test_identities_that_cannot_be_a_url_segment_and_basic_auth_user_are_refused(identity: str) -> None:
    with pytest.raises(ValueError, match="ocpp_identity"):
        identity_check(identity)


def test_passwords_are_16_to_40_printable_characters_and_generated_ones_fit() -> None:
    assert password_check("p" * 16) == "p" * 16
    assert password_check("p" * 40) == "p" * 40
    for bad in ("p" * 15, "p" * 41, "with space in it!", ""):
        with pytest.raises(ValueError, match="ocpp_password"):
            password_check(bad)
    generated = password_generate()
    assert password_check(generated) == generated
    assert generated != password_generate()


def test_a_password_matches_its_salted_hash_only() -> None:
    stored = password_hash("correct-horse-battery")

    assert password_matches("correct-horse-battery", stored)
    assert not password_matches("correct-horse-batterx", stored)
    assert stored != password_hash("correct-horse-battery")  # salted
    assert "correct-horse-battery" not in stored
    assert not password_matches("anything", "")
    assert not password_matches("anything", "md5$x$y")


def test_basic_auth_and_unreadable_frames() -> None:
    from websockets.datastructures import Headers

    assert _basic_auth(Headers({"Authorization": "Basic RVZCLTE6c2VjcmV0OnBhcnQ="})) == (
        "EVB-1",
        "secret:part",
    )
    assert _basic_auth(Headers({"Authorization": "Bearer x"})) is None
    assert _basic_auth(Headers({"Authorization": "Basic ***"})) is None
    assert _basic_auth(Headers({"Authorization": "Basic bm9jb2xvbg=="})) is None  # "nocolon"
    assert _basic_auth(Headers()) is None
    assert _unique_id_of('[2, "abc", "Authorize", {') == "-1"
    assert _unique_id_of('[2, "abc", "Authorize"]') == "abc"
    assert _unique_id_of("{}") == "-1"


def test_the_bucket_lets_a_burst_through_then_the_rate() -> None:
    now = [0.0]
    bucket = CallBucket(rate=2, burst=3, clock=lambda: now[0])

    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5  # one call's worth at 2/s
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 100
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
