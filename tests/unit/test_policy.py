"""decide(): one row per line of DESIGN "Decisions", with the half-open validity windows at their edges."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from apps.access.policy import (
    Decision,
    GrantFacts,
    Reason,
    StationFacts,
    Status,
    TokenFacts,
    decide,
    decision_message,
    within_window,
)

AT = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

STATION_ID = "6f1c2a9e-4b7d-4c1a-9e3f-2d8b5a7c0e14"
OTHER_STATION_ID = "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"

ENABLED = StationFacts(enabled=True)
DISABLED = StationFacts(enabled=False)
ACTIVE_TOKEN = TokenFacts(blocked=False, valid_until=None)


def token(*, blocked: bool = False, valid_until: datetime | None = None) -> TokenFacts:
    return TokenFacts(blocked=blocked, valid_until=valid_until)


def grant(
    station_id: str | None = STATION_ID,
    *,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
) -> GrantFacts:
    return GrantFacts(station_id=station_id, valid_from=valid_from, valid_until=valid_until)


def all_stations(*, valid_from: datetime | None = None, valid_until: datetime | None = None) -> GrantFacts:
    return grant(None, valid_from=valid_from, valid_until=valid_until)


GRANTED = (Status.ALLOWED, Reason.GRANTED)


@pytest.mark.parametrize(
    ("token_facts", "grants", "station", "expected"),
    [
        # Who the token is.
        pytest.param(
            None, [grant()], ENABLED, (Status.NOT_ALLOWED, Reason.UNKNOWN_TOKEN), id="unknown_token"
        ),
        pytest.param(
            token(blocked=True),
            [grant(), all_stations()],
            ENABLED,
            (Status.NOT_ALLOWED, Reason.TOKEN_BLOCKED),
            id="blocked_token_with_valid_grant_is_blocked",
        ),
        pytest.param(
            token(blocked=True, valid_until=AT - DAY),
            [grant()],
            ENABLED,
            (Status.NOT_ALLOWED, Reason.TOKEN_BLOCKED),
            id="blocked_and_expired_token_reports_blocked_first",
        ),
        pytest.param(
            token(valid_until=AT),
            [grant()],
            ENABLED,
            (Status.NOT_ALLOWED, Reason.TOKEN_EXPIRED),
            id="token_valid_until_equal_to_at_is_expired",
        ),
        pytest.param(
            token(valid_until=AT - US),
            [grant()],
            ENABLED,
            (Status.NOT_ALLOWED, Reason.TOKEN_EXPIRED),
            id="token_valid_until_before_at_is_expired",
        ),
        pytest.param(
            token(valid_until=AT + US),
            [grant()],
            ENABLED,
            GRANTED,
            id="token_valid_until_one_microsecond_after_at_is_valid",
        ),
        pytest.param(
            token(valid_until=AT),
            [grant()],
            DISABLED,
            (Status.NOT_ALLOWED, Reason.TOKEN_EXPIRED),
            id="expired_token_at_disabled_station_reports_token_first",
        ),
        # The station.
        pytest.param(
            ACTIVE_TOKEN,
            [grant(), all_stations()],
            DISABLED,
            (Status.NOT_ALLOWED, Reason.STATION_DISABLED),
            id="disabled_station_with_valid_grant_is_disabled",
        ),
        pytest.param(
            ACTIVE_TOKEN,
            [],
            DISABLED,
            (Status.NOT_ALLOWED, Reason.STATION_DISABLED),
            id="disabled_station_without_grant_reports_station_before_grants",
        ),
        pytest.param(
            ACTIVE_TOKEN,
            [grant()],
            None,
            GRANTED,
            id="unknown_station_with_grant_for_its_id_is_allowed",
        ),
        pytest.param(
            ACTIVE_TOKEN,
            [all_stations()],
            None,
            GRANTED,
            id="unknown_station_with_all_stations_grant_is_allowed",
        ),
        pytest.param(
            ACTIVE_TOKEN,
            [grant(OTHER_STATION_ID)],
            None,
            (Status.NOT_ALLOWED, Reason.NO_GRANT),
            id="unknown_station_with_grant_for_another_station_has_no_grant",
        ),
        # Which grants cover the station.
        pytest.param(ACTIVE_TOKEN, [], ENABLED, (Status.NOT_ALLOWED, Reason.NO_GRANT), id="no_grants_at_all"),
        pytest.param(
            ACTIVE_TOKEN,
            [grant(OTHER_STATION_ID)],
            ENABLED,
            (Status.NOT_ALLOWED, Reason.NO_GRANT),
            id="grant_for_another_station_only_is_no_grant",
        ),
        pytest.param(
            ACTIVE_TOKEN,
            [grant(OTHER_STATION_ID, valid_from=AT + HOUR)],
            ENABLED,
            (Status.NOT_ALLOWED, Reason.NO_GRANT),
            id="future_grant_for_another_station_is_no_grant_not_not_yet_valid",
        ),
        pytest.param(ACTIVE_TOKEN, [all_stations()], ENABLED, GRANTED, id="all_stations_grant_is_allowed"),
        pytest.param(
            ACTIVE_TOKEN,
            [grant(OTHER_STATION_ID), all_stations()],
            ENABLED,
            GRANTED,
            id="own_grant_elsewhere_plus_group_all_stations_grant_is_allowed",
        ),
        pytest.param(
            ACTIVE_TOKEN,
            [grant(valid_until=AT - HOUR), all_stations(valid_from=AT - DAY, valid_until=AT + DAY)],
            ENABLED,
            GRANTED,
            id="expired_own_grant_plus_current_group_grant_is_allowed",
        ),
        pytest.param(
            ACTIVE_TOKEN,
            [grant(valid_until=AT - HOUR), grant(OTHER_STATION_ID)],
            ENABLED,
            (Status.NOT_ALLOWED, Reason.GRANT_EXPIRED),
            id="expired_grant_here_and_current_grant_elsewhere_is_expired",
        ),
        # Grant validity windows are half-open: [valid_from, valid_until).
        pytest.param(
            ACTIVE_TOKEN,
            [grant(valid_from=AT)],
            ENABLED,
            GRANTED,
            id="grant_valid_from_equal_to_at_is_allowed",
        ),
        pytest.param(
            ACTIVE_TOKEN,
            [grant(valid_from=AT + US)],
            ENABLED,
            (Status.NOT_ALLOWED, Reason.GRANT_NOT_YET_VALID),
            id="grant_valid_from_one_microsecond_after_at_is_not_yet_valid",
        ),
        pytest.param(
            ACTIVE_TOKEN,
            [all_stations(valid_from=AT + DAY)],
            ENABLED,
            (Status.NOT_ALLOWED, Reason.GRANT_NOT_YET_VALID),
            id="future_all_stations_grant_is_not_yet_valid",
        ),
        pytest.param(
            ACTIVE_TOKEN,
            [grant(valid_until=AT)],
            ENABLED,
            (Status.NOT_ALLOWED, Reason.GRANT_EXPIRED),
            id="grant_valid_until_equal_to_at_is_expired",
        ),
        pytest.param(
            ACTIVE_TOKEN,
            [grant(valid_until=AT + US)],
            ENABLED,
            GRANTED,
            id="grant_valid_until_one_microsecond_after_at_is_allowed",
        ),
        pytest.param(
            ACTIVE_TOKEN,
            [grant(valid_from=AT - US, valid_until=AT + US)],
            ENABLED,
            GRANTED,
            id="grant_window_of_two_microseconds_around_at_is_allowed",
        ),
        pytest.param(
            ACTIVE_TOKEN,
            [grant(valid_until=AT - HOUR), grant(valid_from=AT + HOUR)],
            ENABLED,
            (Status.NOT_ALLOWED, Reason.GRANT_NOT_YET_VALID),
            id="expired_plus_future_grant_is_not_yet_valid",
        ),
        pytest.param(
            ACTIVE_TOKEN,
            [grant(valid_from=AT + HOUR), grant(valid_until=AT - HOUR)],
            ENABLED,
            (Status.NOT_ALLOWED, Reason.GRANT_NOT_YET_VALID),
            id="future_plus_expired_grant_in_either_order_is_not_yet_valid",
        ),
        pytest.param(
            ACTIVE_TOKEN,
            [grant(valid_until=AT - HOUR), grant(valid_from=AT - HOUR, valid_until=AT + HOUR)],
            ENABLED,
            GRANTED,
            id="expired_plus_current_grant_is_allowed",
        ),
        pytest.param(
            ACTIVE_TOKEN,
            [grant(valid_until=AT - DAY), all_stations(valid_until=AT - HOUR)],
            ENABLED,
            (Status.NOT_ALLOWED, Reason.GRANT_EXPIRED),
            id="only_expired_grants_is_expired",
        ),
    ],
)
def test_decide_follows_the_decision_table(
    token_facts: TokenFacts | None,
    grants: list[GrantFacts],
    station: StationFacts | None,
    expected: tuple[Status, Reason],
) -> None:
    decision = decide(token=token_facts, grants=grants, station_id=STATION_ID, station=station, at=AT)

    assert (decision.status, decision.reason) == expected


def test_decide_accepts_grants_as_a_one_shot_iterator() -> None:
    def merged_grants() -> Iterator[GrantFacts]:
        yield grant(OTHER_STATION_ID)
        yield grant(valid_until=AT - HOUR)
        yield all_stations(valid_from=AT - HOUR)

    decision = decide(
        token=ACTIVE_TOKEN, grants=merged_grants(), station_id=STATION_ID, station=ENABLED, at=AT
    )

    assert decision == Decision(Status.ALLOWED, Reason.GRANTED, expires_at=None)


@pytest.mark.parametrize(
    ("token_valid_until", "grants", "expected_expires_at"),
    [
        pytest.param(None, [grant()], None, id="open_ended_everywhere_never_expires"),
        pytest.param(AT + DAY, [grant()], AT + DAY, id="token_end_when_grant_is_open_ended"),
        pytest.param(
            None, [grant(valid_until=AT + HOUR)], AT + HOUR, id="grant_end_when_token_is_open_ended"
        ),
        pytest.param(
            AT + HOUR, [grant(valid_until=AT + DAY)], AT + HOUR, id="token_ends_first_so_token_end_wins"
        ),
        pytest.param(
            AT + DAY, [grant(valid_until=AT + HOUR)], AT + HOUR, id="grant_ends_first_so_grant_end_wins"
        ),
        pytest.param(
            None,
            [grant(valid_until=AT + HOUR), all_stations(valid_until=AT + 2 * HOUR)],
            AT + 2 * HOUR,
            id="longest_lived_current_grant_counts",
        ),
        pytest.param(
            None,
            [grant(valid_until=AT + HOUR), all_stations()],
            None,
            id="one_open_ended_current_grant_makes_grants_open_ended",
        ),
        pytest.param(
            AT + DAY,
            [grant(valid_until=AT + HOUR), all_stations()],
            AT + DAY,
            id="open_ended_grant_leaves_the_token_end",
        ),
        pytest.param(
            None,
            [grant(valid_until=AT + HOUR), grant(valid_from=AT + 2 * HOUR, valid_until=AT + DAY)],
            AT + HOUR,
            id="future_grant_does_not_extend_the_answer",
        ),
        pytest.param(
            None,
            [grant(valid_until=AT + HOUR), grant(OTHER_STATION_ID, valid_until=AT + DAY)],
            AT + HOUR,
            id="grant_for_another_station_does_not_extend_the_answer",
        ),
        pytest.param(
            None,
            [grant(valid_until=AT - US), grant(valid_until=AT + US)],
            AT + US,
            id="expired_grant_does_not_count",
        ),
    ],
)
def test_allowed_decision_expires_at_the_earliest_end(
    token_valid_until: datetime | None, grants: list[GrantFacts], expected_expires_at: datetime | None
) -> None:
    decision = decide(
        token=token(valid_until=token_valid_until),
        grants=grants,
        station_id=STATION_ID,
        station=ENABLED,
        at=AT,
    )

    assert decision.status == Status.ALLOWED
    assert decision.expires_at == expected_expires_at


@pytest.mark.parametrize(
    ("token_facts", "grants", "station"),
    [
        pytest.param(token(valid_until=AT - US), [grant(valid_until=AT + DAY)], ENABLED, id="token_expired"),
        pytest.param(token(valid_until=AT + DAY), [grant(valid_until=AT - US)], ENABLED, id="grant_expired"),
        pytest.param(
            token(valid_until=AT + DAY), [grant(valid_until=AT + DAY)], DISABLED, id="station_disabled"
        ),
    ],
)
def test_denied_decision_carries_no_expiry(
    token_facts: TokenFacts, grants: list[GrantFacts], station: StationFacts
) -> None:
    decision = decide(token=token_facts, grants=grants, station_id=STATION_ID, station=station, at=AT)

    assert decision.status == Status.NOT_ALLOWED
    assert decision.expires_at is None


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [
        pytest.param(Status.ALLOWED, Reason.GRANTED, "Access granted", id="allowed_is_access_granted"),
        pytest.param(Status.NOT_ALLOWED, Reason.UNKNOWN_TOKEN, "Access denied", id="unknown_token_is_denied"),
        pytest.param(Status.NOT_ALLOWED, Reason.TOKEN_BLOCKED, "Access denied", id="blocked_is_denied"),
        pytest.param(Status.NOT_ALLOWED, Reason.STATION_DISABLED, "Access denied", id="disabled_is_denied"),
        pytest.param(Status.NOT_ALLOWED, Reason.GRANT_EXPIRED, "Access denied", id="grant_expired_is_denied"),
        pytest.param(Status.UNKNOWN, Reason.TIMEOUT, "Request is too old", id="timeout_is_request_too_old"),
        pytest.param(Status.UNKNOWN, "timeout", "Request is too old", id="reason_as_stored_string_works"),
        pytest.param(
            Status.UNKNOWN,
            Reason.BACKEND_UNAVAILABLE,
            "Authorization backend unavailable",
            id="backend_unavailable_is_not_called_too_old",
        ),
        pytest.param(Status.INVALID, Reason.MALFORMED_MESSAGE, "Request is invalid", id="invalid_message"),
    ],
)
def test_decision_message_keeps_the_original_wording(
    status: Status, reason: Reason | str, message: str
) -> None:
    assert decision_message(status, reason) == message


# --- the validity window, the one rule ----------------------------------------------------------


def test_the_window_is_half_open_and_an_end_left_out_is_open() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=1)
    assert within_window(start, end, start)  # from: inclusive
    assert not within_window(start, end, end)  # until: exclusive
    assert not within_window(start, end, start - timedelta(microseconds=1))
    assert within_window(None, end, start - timedelta(days=365))
    assert within_window(start, None, end + timedelta(days=365))
    assert within_window(None, None, start)
