"""Admin for the access-control list: stations, token groups, driver tokens and grants.

Forms validate what an operator typed (token values, station ids in any accepted form); every write
goes through apps/access/services.py, like the API's. Tokens and grants are never deleted here:
tokens are blocked, grants revoked, so the history of who could charge where stays readable.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import ShowFacets
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from import_export.admin import ImportExportModelAdmin  # type: ignore[import-untyped]
from import_export.formats.base_formats import CSV  # type: ignore[import-untyped]

from apps.access.identifiers import driver_token_check, station_id_normalize
from apps.access.models import DriverToken, Grant, Station, TokenGroup
from apps.access.resources import DATETIME_HELP, DriverTokenResource, GrantResource
from apps.access.selectors import grant_identical_get, station_get
from apps.access.services import (
    grant_create,
    grant_revoke,
    grant_update,
    station_create,
    station_disable,
    station_enable,
    station_ensure,
    station_update,
    token_block,
    token_create,
    token_group_create,
    token_group_update,
    token_unblock,
    token_update,
)

admin.site.site_header = "Charge Service administration"
admin.site.site_title = "Charge Service admin"
admin.site.index_title = "Access control, decision log and API clients"


def _changelist_url(model: type[Model], **params: object) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return f"{url}?{query}" if query else url


def station_search_q(term: str) -> Q:
    """An exact match on the stored form of a station id typed in any accepted form, or nothing."""
    try:
        return Q(station_id=station_id_normalize(term.strip()))
    except ValueError:
        return Q(pk__in=[])


class ServiceWritesMixin:
    """The admin's forms validate; creating and changing rows is left to the app's services."""

    def service_create(self, request: HttpRequest, form: Any) -> Model:
        raise NotImplementedError

    def service_update(self, request: HttpRequest, obj: Any, form: Any) -> None:
        raise NotImplementedError

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        if change:
            return form.save(commit=False)
        return self.service_create(request, form)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            self.service_update(request, obj, form)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """These models have no many-to-many fields and no inlines: nothing else to save."""


class CsvImportExportAdmin(ImportExportModelAdmin):
    """CSV only; importing needs add and change permission, exporting needs view permission."""

    import_formats = [CSV]
    export_formats = [CSV]
    # Facet counts run one COUNT per filter choice over tables of 100,000s of rows.
    show_facets = ShowFacets.NEVER
    import_template_name = "admin/access/import.html"
    import_help: tuple[tuple[str, str], ...] = ()

    def has_import_permission(self, request: HttpRequest) -> bool:
        return bool(self.has_add_permission(request) and self.has_change_permission(request))

    def has_export_permission(self, request: HttpRequest) -> bool:
        return bool(self.has_view_permission(request))

    def get_import_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {"import_help": self.import_help}


# --- stations -----------------------------------------------------------------------------------


class StationForm(forms.ModelForm):
    class Meta:
        model = Station
        fields = ("station_id", "name", "location", "enabled")
        help_texts = {"station_id": "a UUID (any case, with or without hyphens) or a 36-character id"}

    def clean_station_id(self) -> str:
        try:
            return station_id_normalize(self.cleaned_data["station_id"].strip())
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(Station)
class StationAdmin(ServiceWritesMixin, admin.ModelAdmin):
    form = StationForm
    list_display = ("station_id", "name", "location", "enabled", "grants", "updated_at")
    list_filter = ("enabled", ("updated_at", admin.DateFieldListFilter))
    search_fields = ("name", "location")
    search_help_text = "station id (any form), name or location"
    actions = ["enable", "disable"]
    show_full_result_count = False
    show_facets = ShowFacets.NEVER

    def get_readonly_fields(self, request: HttpRequest, obj: Station | None = None) -> tuple[str, ...]:
        return ("station_id",) if obj is not None else ()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Station], search_term: str
    ) -> tuple[QuerySet[Station], bool]:
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            found |= queryset.filter(station_search_q(search_term))
        return found, may_have_duplicates

    @admin.display(description="grants")
    def grants(self, station: Station) -> str:
        return format_html('<a href="{}">grants here</a>', _changelist_url(Grant, station__exact=station.pk))

    def service_create(self, request: HttpRequest, form: StationForm) -> Station:
        data = form.cleaned_data
        return station_create(
            station_id=data["station_id"],
            name=data["name"],
            location=data["location"],
            enabled=data["enabled"],
        )

    def service_update(self, request: HttpRequest, obj: Station, form: StationForm) -> None:
        data = form.cleaned_data
        station_update(station=obj, name=data["name"], location=data["location"], enabled=data["enabled"])

    @admin.action(description="Enable the selected stations", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Station]) -> None:
        changed = 0
        for station in queryset.filter(enabled=False).iterator():
            station_enable(station=station)
            changed += 1
        self.message_user(request, f"Enabled {changed} station(s).", messages.SUCCESS)

    @admin.action(
        description="Disable the selected stations (they refuse every token)", permissions=["change"]
    )
    def disable(self, request: HttpRequest, queryset: QuerySet[Station]) -> None:
        changed = 0
        for station in queryset.filter(enabled=True).iterator():
            station_disable(station=station)
            changed += 1
        self.message_user(request, f"Disabled {changed} station(s).", messages.SUCCESS)


# --- token groups -------------------------------------------------------------------------------


@admin.register(TokenGroup)
class TokenGroupAdmin(ServiceWritesMixin, admin.ModelAdmin):
    list_display = ("name", "note", "links", "created_at")
    search_fields = ("name", "note")
    list_filter = (("created_at", admin.DateFieldListFilter),)

    @admin.display(description="")
    def links(self, group: TokenGroup) -> str:
        return format_html(
            '<a href="{}">tokens</a> · <a href="{}">grants</a>',
            _changelist_url(DriverToken, group__id__exact=group.pk),
            _changelist_url(Grant, group__id__exact=group.pk),
        )

    def service_create(self, request: HttpRequest, form: Any) -> TokenGroup:
        return token_group_create(name=form.cleaned_data["name"], note=form.cleaned_data["note"])

    def service_update(self, request: HttpRequest, obj: TokenGroup, form: Any) -> None:
        token_group_update(group=obj, name=form.cleaned_data["name"], note=form.cleaned_data["note"])


# --- driver tokens ------------------------------------------------------------------------------


class TokenValidityFilter(admin.SimpleListFilter):
    title = "validity"
    parameter_name = "validity"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("current", "valid now"),
            ("expiring", "expires within 30 days"),
            ("expired", "expired"),
            ("open", "no end date"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        match self.value():
            case "current":
                return queryset.filter(Q(valid_until=None) | Q(valid_until__gt=now))
            case "expiring":
                return queryset.filter(valid_until__gt=now, valid_until__lte=now + timedelta(days=30))
            case "expired":
                return queryset.filter(valid_until__lte=now)
            case "open":
                return queryset.filter(valid_until=None)
        return queryset


class DriverTokenForm(forms.ModelForm):
    class Meta:
        model = DriverToken
        fields = ("value", "type", "status", "valid_until", "group", "note")
        help_texts = {
            "value": "20 to 80 characters of A-Z a-z 0-9 - . _ ~ (as the card or app sends it)",
            "status": "a blocked token is refused everywhere; its grants are kept",
            "valid_until": "empty: no end. At this moment the token expires.",
        }

    def clean_value(self) -> str:
        try:
            return driver_token_check(self.cleaned_data["value"].strip())
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(DriverToken)
class DriverTokenAdmin(ServiceWritesMixin, CsvImportExportAdmin):
    form = DriverTokenForm
    resource_classes = [DriverTokenResource]
    change_list_template = "admin/access/drivertoken/change_list.html"
    list_display = ("value", "type", "status", "valid_until", "group", "grants", "updated_at")
    list_filter = ("status", "type", TokenValidityFilter, "group", ("created_at", admin.DateFieldListFilter))
    search_fields = ("value", "note", "group__name")
    search_help_text = "token value (or part of it), note or group name"
    list_select_related = ("group",)
    actions = ["block", "unblock"]
    show_full_result_count = False
    import_help = (
        ("value", "required; a known value updates that token, a new one adds it"),
        ("type", "rfid, app or other (empty: rfid)"),
        ("status", "active or blocked (empty: active)"),
        ("valid_until", f"empty: no end; {DATETIME_HELP}"),
        ("group", "the name of an existing token group, or empty"),
        ("note", "free text"),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: DriverToken | None = None) -> tuple[str, ...]:
        return ("value", "created_at", "updated_at") if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: DriverToken | None = None) -> bool:
        return False  # tokens are blocked, never deleted (OCPI keeps them with valid=false)

    @admin.display(description="grants")
    def grants(self, token: DriverToken) -> str:
        return format_html(
            '<a href="{}">grants</a> · <a href="{}?token={}">add grant</a>',
            _changelist_url(Grant, token__exact=token.pk),
            reverse("admin:access_grant_add"),
            token.value,
        )

    def service_create(self, request: HttpRequest, form: DriverTokenForm) -> DriverToken:
        data = form.cleaned_data
        token = token_create(
            value=data["value"],
            type=data["type"],
            valid_until=data["valid_until"],
            group=data["group"],
            note=data["note"],
        )
        if data["status"] == DriverToken.Status.BLOCKED:
            token_block(token=token)
        return token

    def service_update(self, request: HttpRequest, obj: DriverToken, form: DriverTokenForm) -> None:
        data = form.cleaned_data
        # The form already set the new status on obj; the services change it from the stored one.
        obj.status = form.initial["status"]
        token_update(
            token=obj,
            type=data["type"],
            valid_until=data["valid_until"],
            group=data["group"],
            note=data["note"],
        )
        if data["status"] != obj.status:
            (token_block if data["status"] == DriverToken.Status.BLOCKED else token_unblock)(token=obj)

    @admin.action(description="Block the selected tokens (refused everywhere)", permissions=["change"])
    def block(self, request: HttpRequest, queryset: QuerySet[DriverToken]) -> None:
        changed = 0
        for token in queryset.exclude(status=DriverToken.Status.BLOCKED).iterator():
            token_block(token=token)
            changed += 1
        self.message_user(request, f"Blocked {changed} token(s).", messages.SUCCESS)

    @admin.action(description="Unblock the selected tokens", permissions=["change"])
    def unblock(self, request: HttpRequest, queryset: QuerySet[DriverToken]) -> None:
        changed = 0
        for token in queryset.filter(status=DriverToken.Status.BLOCKED).iterator():
            token_unblock(token=token)
            changed += 1
        self.message_user(request, f"Unblocked {changed} token(s).", messages.SUCCESS)


# --- grants -------------------------------------------------------------------------------------


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
                return not_revoked.filter(Q(valid_from=None) | Q(valid_from__lte=now)).filter(
                    Q(valid_until=None) | Q(valid_until__gt=now)
                )
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
        return [
            "token",
            "group",
            "station",
            "valid_from",
            "valid_until",
            "note",
            "revoked_at",
            "created_by",
            "created_at",
        ]

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
