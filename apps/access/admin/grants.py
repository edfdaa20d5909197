"""Grants: who may charge where and when; revoked, never deleted."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from apps.access.admin.common import CsvImportExportAdmin, ServiceWritesMixin
from apps.access.identifiers import driver_token_check, station_id_normalize
from apps.access.models import DriverToken, Grant
from apps.access.resources import DATETIME_HELP, GRANT_RECORD_FIELDS, GrantResource
from apps.access.selectors import grant_active_q, grant_identical_get, station_get
from apps.access.services import grant_create, grant_revoke, grant_update, station_ensure


class TokenByValueField(forms.ModelChoiceField):
    """A token typed by its value, as operators have it from a card, an app or a ticket."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            queryset=DriverToken.objects.all(),
            to_field_name="value",
            widget=forms.TextInput(attrs={"size": 60, "placeholder": "driver token value"}),
            error_messages={"invalid_choice": "There is no token with this value: add the token first."},
            **kwargs,
        )

    def to_python(self, value: Any) -> Any:
        text = (value or "").strip()
        if not text:
            return None
        try:
            driver_token_check(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc), code="invalid") from None
        return super().to_python(text)


class StationIdField(forms.CharField):
    """A station id in any accepted form, cleaned to its stored form ("" when left empty)."""

    def clean(self, value: Any) -> str:
        text = super().clean(value).strip()
        if not text:
            return ""
        try:
            return station_id_normalize(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class GrantForm(forms.ModelForm):
    token = TokenByValueField(required=False, help_text="the token's value; or leave empty and pick a group")
    station_id = StationIdField(
        label="Station",
        required=False,
        widget=forms.TextInput(attrs={"size": 40, "placeholder": "station id"}),
        help_text="a station id in any accepted form; an id not known yet adds the station",
    )
    every_station = forms.BooleanField(
        label="Every station",
        required=False,
        help_text="tick instead of a station id: valid at every station",
    )

    class Meta:
        model = Grant
        fields = ("token", "group", "valid_from", "valid_until", "note")
        help_texts = {
            "group": "instead of a token: every token of this group",
            "valid_from": "empty: from now on",
            "valid_until": "empty: no end. At this moment the grant expires.",
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        valid_from, valid_until = data.get("valid_from"), data.get("valid_until")
        if valid_from and valid_until and valid_until <= valid_from:
            self.add_error("valid_until", "Must be later than valid from.")
        if self.instance.pk is not None:  # holder and station are fixed once the grant exists
            return data
        token, group = data.get("token"), data.get("group")
        if "token" not in self.errors and not token and not group:
            self.add_error("token", "Name a token, or pick a group.")
        elif token and group:
            self.add_error("group", "A grant belongs to a token or to a group, not both.")
        station_id, every = data.get("station_id"), data.get("every_station")
        if "station_id" not in self.errors and not station_id and not every:
            self.add_error("station_id", "Enter a station id, or tick 'Every station'.")
        elif station_id and every:
            self.add_error("every_station", "Either one station or every station, not both.")
        if self.errors:
            return data
        station = station_get(station_id=station_id) if station_id else None
        if station_id and station is None:
            return data  # a new station cannot have grants yet
        existing = grant_identical_get(
            token=token,
            group=group,
            station=station,
            valid_from=valid_from,
            valid_until=valid_until,
        )
        if existing is not None:
            raise forms.ValidationError(f"An identical live grant exists already (#{existing.pk}).")
        return data


class GrantStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("live", "live now"),
            ("scheduled", "not yet valid"),
            ("expired", "expired"),
            ("revoked", "revoked"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        not_revoked = queryset.filter(revoked_at=None)
        match self.value():
            case "live":
                return queryset.filter(grant_active_q(at=now))
            case "scheduled":
                return not_revoked.filter(valid_from__gt=now)
            case "expired":
                return not_revoked.filter(valid_until__lte=now)
            case "revoked":
                return queryset.exclude(revoked_at=None)
        return queryset


class GrantScopeFilter(admin.SimpleListFilter):
    title = "where"
    parameter_name = "where"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("station", "one station"), ("all", "every station")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "station":
            return queryset.exclude(station=None)
        if self.value() == "all":
            return queryset.filter(station=None)
        return queryset


class GrantHolderFilter(admin.SimpleListFilter):
    title = "holder"
    parameter_name = "holder"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("token", "a token"), ("group", "a group")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "token":
            return queryset.exclude(token=None)
        if self.value() == "group":
            return queryset.exclude(group=None)
        return queryset


@admin.register(Grant)
class GrantAdmin(ServiceWritesMixin, CsvImportExportAdmin):
    form = GrantForm
    resource_classes = [GrantResource]
    list_display = ("id", "holder", "where", "valid_from", "valid_until", "state", "created_by", "created_at")
    list_display_links = ("id", "holder")
    list_filter = (
        GrantStateFilter,
        GrantScopeFilter,
        GrantHolderFilter,
        "group",
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("token__value", "group__name", "note")
    search_help_text = "token value, station id (any form), group name or note"
    list_select_related = ("token", "group", "station", "created_by")
    actions = ["revoke"]
    show_full_result_count = False
    import_help = (
        ("token", "the value of an existing token; or empty and a group in the group column"),
        ("group", "the name of an existing token group (only when token is empty)"),
        ("station", "a station id in any accepted form; empty: every station; a new id adds the station"),
        ("valid_from / valid_until", f"empty: no bound; {DATETIME_HELP}"),
        ("note", "free text"),
        (
            "id, revoked_at, created_by, created_at",
            "written by export, ignored on import; rows with a revoked_at are skipped",
        ),
    )

    def get_fields(self, request: HttpRequest, obj: Grant | None = None) -> list[str]:
        if obj is None:
            return ["token", "group", "station_id", "every_station", "valid_from", "valid_until", "note"]
        return list(GRANT_RECORD_FIELDS)

    def get_readonly_fields(self, request: HttpRequest, obj: Grant | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        if obj.revoked_at is not None:  # a revoked grant is a record: create a new one instead
            return tuple(self.get_fields(request, obj))
        return ("token", "group", "station", "revoked_at", "created_by", "created_at")

    def has_delete_permission(self, request: HttpRequest, obj: Grant | None = None) -> bool:
        return False  # grants are revoked, not deleted, so the log of who could charge where stays

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Grant], search_term: str
    ) -> tuple[QuerySet[Grant], bool]:
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            try:
                station_id = station_id_normalize(search_term.strip())
            except ValueError:
                return found, may_have_duplicates
            found |= queryset.filter(station_id=station_id)
        return found, may_have_duplicates

    @admin.display(description="holder", ordering="token__value")
    def holder(self, grant: Grant) -> str:
        if grant.token is not None:
            return grant.token.value
        return f"group {grant.group}"

    @admin.display(description="station", ordering="station")
    def where(self, grant: Grant) -> str:
        return grant.station_id or "every station"

    @admin.display(description="state")
    def state(self, grant: Grant) -> str:
        now = timezone.now()
        if grant.revoked_at is not None:
            return "revoked"
        if grant.valid_from is not None and now < grant.valid_from:
            return "not yet valid"
        if grant.valid_until is not None and now >= grant.valid_until:
            return "expired"
        return "live"

    def service_create(self, request: HttpRequest, form: GrantForm) -> Grant:
        data = form.cleaned_data
        return grant_create(
            token=data["token"],
            group=data["group"],
            station=station_ensure(station_id=data["station_id"]) if data["station_id"] else None,
            valid_from=data["valid_from"],
            valid_until=data["valid_until"],
            note=data["note"],
            created_by=request.user if request.user.is_authenticated else None,
        )

    def service_update(self, request: HttpRequest, obj: Grant, form: GrantForm) -> None:
        data = form.cleaned_data
        grant_update(
            grant=obj, valid_from=data["valid_from"], valid_until=data["valid_until"], note=data["note"]
        )

    @admin.action(description="Revoke the selected grants", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Grant]) -> None:
        now = timezone.now()
        changed = 0
        for grant in queryset.filter(revoked_at=None).iterator():
            grant_revoke(grant=grant, at=now)
            changed += 1
        self.message_user(request, f"Revoked {changed} grant(s).", messages.SUCCESS)
