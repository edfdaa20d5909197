"""Admin for the decision log, and the "recently refused unknown tokens" view.

The decision log is the biggest table of the service, so this list never counts it whole, never
lists its distinct values for a filter, and filters and searches only on indexed columns.
"""

from __future__ import annotations

import uuid
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import ShowFacets
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Max, Min, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.functional import cached_property
from django.utils.html import format_html

from apps.access.identifiers import driver_token_check, station_id_normalize
from apps.access.models import DriverToken
from apps.access.policy import Reason, Status
from apps.access.services import AclInsertOutcome, acl_insert
from apps.charging.models import ChargingRequest
from apps.core.readonly_admin import ReadOnlyAdmin


class CappedCountPaginator(Paginator):
    """Counts at most `cap` rows (a LIMITed subquery): a page of a huge log costs what a small one does."""

    cap = 10_000
    capped = False

    @cached_property
    def count(self) -> int:
        rows: Any = self.object_list  # the changelist's queryset
        counted = rows[: self.cap + 1].count()
        self.capped = counted > self.cap
        return min(counted, self.cap)


class ReasonFilter(admin.SimpleListFilter):
    """The reasons of the decision table, listed from the code, not from a DISTINCT over the log."""

    title = "reason"
    parameter_name = "reason"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(reason.value, reason.value.replace("_", " ")) for reason in Reason]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(reason=self.value()) if self.value() else queryset


class RequestedWithinFilter(admin.SimpleListFilter):
    title = "requested"
    parameter_name = "within"
    periods = {
        "15m": ("last 15 minutes", timedelta(minutes=15)),
        "1h": ("last hour", timedelta(hours=1)),
        "24h": ("last 24 hours", timedelta(hours=24)),
        "7d": ("last 7 days", timedelta(days=7)),
        "30d": ("last 30 days", timedelta(days=30)),
    }

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _) in self.periods.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        period = self.periods.get(self.value() or "")
        return queryset.filter(requested_at__gte=timezone.now() - period[1]) if period else queryset


class TextInputFilter(admin.SimpleListFilter):
    """A filter with a text box instead of a list: for columns with too many values to list."""

    template = "admin/charging/input_filter.html"
    placeholder = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return []

    def has_output(self) -> bool:
        return True

    def choices(self, changelist: Any) -> Any:
        others = [(key, value) for key, value in changelist.params.items() if key != self.parameter_name]
        yield {
            "selected": self.value() is not None,
            "parameter_name": self.parameter_name,
            "value": self.value() or "",
            "placeholder": self.placeholder,
            "others": others,
            "clear_url": changelist.get_query_string(remove=[self.parameter_name]),
        }


class StationIdFilter(TextInputFilter):
    title = "station id"
    parameter_name = "station"
    placeholder = "station id, any form"

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = (self.value() or "").strip()
        if not value:
            return queryset
        with suppress(ValueError):
            value = station_id_normalize(value)
        return queryset.filter(station_id=value)


class DriverTokenFilter(TextInputFilter):
    title = "driver token"
    parameter_name = "token"
    placeholder = "exact token value"

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = (self.value() or "").strip()
        return queryset.filter(driver_token=value) if value else queryset


class RequestedOnFilter(TextInputFilter):
    title = "day (UTC)"
    parameter_name = "day"
    placeholder = "YYYY-MM-DD"

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        try:
            day = parse_date((self.value() or "").strip())
        except ValueError:
            day = None
        if day is None:
            return queryset
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return queryset.filter(requested_at__gte=start, requested_at__lt=start + timedelta(days=1))


@admin.register(ChargingRequest)
class ChargingRequestAdmin(ReadOnlyAdmin):
    """The decision log is a record: operators read and filter it, nobody edits it."""

    list_display = (
        "requested_at",
        "request",
        "station_id",
        "driver_token",
        "decision",
        "decision_ms",
        "callback",
    )
    list_display_links = ("request",)
    list_filter = (
        "status",
        ReasonFilter,
        RequestedWithinFilter,
        RequestedOnFilter,
        StationIdFilter,
        DriverTokenFilter,
        "source",
        "client",
    )
    # Searched by get_search_results below: each term is an exact, indexed match.
    search_fields = ("=request_id", "=station_id", "=driver_token")
    search_help_text = "exact request id, station id (any form) or driver token"
    # Only the column the log's index is ordered by: sorting a big log by anything else scans it.
    sortable_by = ("requested_at",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    list_per_page = 100

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[ChargingRequest], search_term: str
    ) -> tuple[QuerySet[ChargingRequest], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(driver_token=term) | Q(station_id=term)
        with suppress(ValueError):
            match |= Q(request_id=uuid.UUID(term))
        with suppress(ValueError):
            match |= Q(station_id=station_id_normalize(term))
        return queryset.filter(match), False

    @admin.display(description="request")
    def request(self, row: ChargingRequest) -> str:
        # The first block of the UUID tells rows apart on screen; the full id is in the title and the page.
        return format_html('<span title="{}">{}…</span>', row.request_id, str(row.request_id)[:8])

    @admin.display(description="decision")
    def decision(self, row: ChargingRequest) -> str:
        return format_html("{}<br><small>{}</small>", row.get_status_display(), row.reason or "")

    @admin.display(description="decision ms")
    def decision_ms(self, row: ChargingRequest) -> str | None:
        if row.decided_at is None:
            return None
        return f"{(row.decided_at - row.requested_at).total_seconds() * 1000:.0f}"

    @admin.display(description="callback")
    def callback(self, row: ChargingRequest) -> str | None:
        if not row.callback_url:
            return None
        url = reverse("admin:callbacks_callbackdelivery_changelist")
        return format_html('<a href="{}?q={}">delivery</a>', url, row.request_id)

    # --- recently refused unknown tokens --------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.unknown_tokens_view)
        return [
            path("unknown-tokens/", view, name="charging_chargingrequest_unknown_tokens"),
            *super().get_urls(),
        ]

    def unknown_tokens_view(self, request: HttpRequest) -> HttpResponse:
        """Tokens refused as unknown lately, per token and station, with an action to add them."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        can_add = request.user.has_perms(["access.add_drivertoken", "access.add_grant"])
        if request.method == "POST":
            if not can_add:
                raise PermissionDenied
            self._unknown_tokens_add(request, request.POST.getlist("sighting"))
            return HttpResponseRedirect(request.get_full_path())
        days = UNKNOWN_TOKEN_DAYS.get(request.GET.get("days", ""), 7)
        context = {
            **self.admin_site.each_context(request),
            "title": "Recently refused unknown tokens",
            "opts": self.model._meta,
            "sightings": unknown_token_sightings(since=timezone.now() - timedelta(days=days)),
            "shown_at_most": UNKNOWN_TOKEN_ROWS,
            "days": days,
            "day_choices": sorted(UNKNOWN_TOKEN_DAYS.values()),
            "can_add": can_add,
        }
        return TemplateResponse(request, "admin/charging/chargingrequest/unknown_tokens.html", context)

    def _unknown_tokens_add(self, request: HttpRequest, sightings: list[str]) -> None:
        if not sightings:
            self.message_user(request, "Select the tokens to add first.", messages.WARNING)
            return
        added: list[str] = []
        existed: list[str] = []
        refused: list[str] = []
        for sighting in sightings:
            driver_token, _, station_id = sighting.partition(" ")
            try:
                normalized = station_id_normalize(station_id)
                driver_token_check(driver_token)
            except ValueError as exc:
                refused.append(f"{driver_token} at {station_id}: {exc}")
                continue
            outcome = acl_insert(station_id=normalized, driver_token=driver_token)
            (added if outcome == AclInsertOutcome.SUCCESS else existed).append(driver_token)
        if added:
            self.message_user(
                request, f"Added {len(added)} token(s), each with a grant at the station where it was seen."
            )
        if existed:
            self.message_user(request, f"{len(existed)} grant(s) existed already.", messages.INFO)
        for line in refused:
            self.message_user(request, f"Not added: {line}", messages.ERROR)


# ?days= choices of the unknown-tokens view, and how many (token, station) pairs it shows.
UNKNOWN_TOKEN_DAYS = {"1": 1, "7": 7, "30": 30}
UNKNOWN_TOKEN_ROWS = 500


def unknown_token_sightings(*, since: datetime, limit: int = UNKNOWN_TOKEN_ROWS) -> list[dict[str, Any]]:
    """(driver_token, station_id) pairs refused as unknown_token since `since`, newest first.

    Reads the request_status index (status, reason, requested_at); tokens added since are left out.
    """
    return list(
        ChargingRequest.objects.filter(
            status=Status.NOT_ALLOWED, reason=Reason.UNKNOWN_TOKEN, requested_at__gte=since
        )
        .exclude(driver_token__in=DriverToken.objects.values("value"))
        .values("driver_token", "station_id")
        .annotate(refusals=Count("pk"), first_seen=Min("requested_at"), last_seen=Max("requested_at"))
        .order_by("-last_seen")[:limit]
    )
