"""The validity window's two forms agree: policy.within_window for values in hand, selectors.window_q
as a filter, at and around each boundary (on PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.access.models import DriverToken, Grant
from apps.access.policy import within_window
from apps.access.selectors import grant_active, grant_active_q, window_q

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, tzinfo=UTC)
END = START + timedelta(days=2)
US = timedelta(microseconds=1)
MOMENTS = [START - US, START, START + US, END - US, END, END + US]
WINDOWS = [(None, None), (START, None), (None, END), (START, END)]


def test_the_filter_and_the_rule_agree_at_every_boundary() -> None:
    token = DriverToken.objects.create(value="WINDOW-TOKEN-0000000001")
    grants = {
        window: Grant.objects.create(token=token, valid_from=window[0], valid_until=window[1])
        for window in WINDOWS
    }
    for at in MOMENTS:
        filtered = set(Grant.objects.filter(window_q(at=at)).values_list("pk", flat=True))
        expected = {grant.pk for window, grant in grants.items() if within_window(*window, at)}
        assert filtered == expected, at
        active = set(Grant.objects.filter(grant_active_q(at=at)).values_list("pk", flat=True))
        assert active == {grant.pk for grant in grants.values() if grant_active(grant=grant, at=at)}, at


def test_tokens_have_only_an_end() -> None:
    open_ended = DriverToken.objects.create(value="WINDOW-TOKEN-0000000002")
    ending = DriverToken.objects.create(value="WINDOW-TOKEN-0000000003", valid_until=END)
    for at in MOMENTS:
        filtered = set(
            DriverToken.objects.filter(window_q(at=at, has_from=False)).values_list("pk", flat=True)
        )
        expected = {t.pk for t in (open_ended, ending) if within_window(None, t.valid_until, at)}
        assert filtered == expected, at
