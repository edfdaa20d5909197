"""Stations: enable and disable, search by id in any accepted form."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import ShowFacets
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from apps.access.admin.common import ServiceWritesMixin, changelist_url, station_search_q
from apps.access.credentials import PASSWORD_RULE, identity_check, password_check
from apps.access.identifiers import station_id_normalize
from apps.access.models import Grant, Station
from apps.access.services import (
    UNCHANGED,
    station_create,
    station_disable,
    station_enable,
    station_ocpp_enroll,
    station_update,
)


class StationForm(forms.ModelForm):
    ocpp_password = forms.CharField(
        label="New OCPP password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=f"{PASSWORD_RULE}; leave empty to keep the current one",
    )
    ocpp_password_generate = forms.BooleanField(
        label="Generate a new OCPP password",
        required=False,
        help_text="shown once, after saving; the old password stops working",
    )

    class Meta:
        model = Station
        fields = ("station_id", "name", "location", "enabled", "ocpp_identity")
        help_texts = {"station_id": "a UUID (any case, with or without hyphens) or a 36-character id"}

    def clean_station_id(self) -> str:
        try:
            return station_id_normalize(self.cleaned_data["station_id"].strip())
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_ocpp_identity(self) -> str | None:
        value = (self.cleaned_data.get("ocpp_identity") or "").strip()
        if not value:
            return None
        try:
            return identity_check(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_ocpp_password(self) -> str | None:
        value = self.cleaned_data.get("ocpp_password") or ""
        if not value:
            return None
        try:
            return password_check(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if (data.get("ocpp_password") or data.get("ocpp_password_generate")) and not data.get(
            "ocpp_identity"
        ):
            self.add_error("ocpp_identity", "a station needs an OCPP identity to have an OCPP password")
        if data.get("ocpp_password") and data.get("ocpp_password_generate"):
            self.add_error("ocpp_password_generate", "either type a password or generate one, not both")
        return data


@admin.register(Station)
class StationAdmin(ServiceWritesMixin, admin.ModelAdmin):
    form = StationForm
    list_display = ("station_id", "name", "location", "enabled", "ocpp_identity", "grants", "updated_at")
    list_filter = ("enabled", ("updated_at", admin.DateFieldListFilter))
    search_fields = ("name", "location", "ocpp_identity")
    search_help_text = "station id (any form), name, location or OCPP identity"
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
        return format_html('<a href="{}">grants here</a>', changelist_url(Grant, station__exact=station.pk))

    def service_create(self, request: HttpRequest, form: StationForm) -> Station:
        data = form.cleaned_data
        station = station_create(
            station_id=data["station_id"],
            name=data["name"],
            location=data["location"],
            enabled=data["enabled"],
        )
        self._ocpp_credentials_save(request, station, form, identity_before=None)
        return station

    def service_update(self, request: HttpRequest, obj: Station, form: StationForm) -> None:
        data = form.cleaned_data
        # The form wrote the new identity on obj already; the service decides what is stored.
        identity_before = form.initial.get("ocpp_identity")
        obj.ocpp_identity = identity_before
        station_update(station=obj, name=data["name"], location=data["location"], enabled=data["enabled"])
        self._ocpp_credentials_save(request, obj, form, identity_before=identity_before)

    def _ocpp_credentials_save(
        self, request: HttpRequest, station: Station, form: StationForm, *, identity_before: str | None
    ) -> None:
        """A new identity, a typed password or a generated one, through the service; a generated one
        is shown once, in the message after saving (only its hash is stored)."""
        data = form.cleaned_data
        identity, typed = data.get("ocpp_identity"), data.get("ocpp_password")
        generate = bool(data.get("ocpp_password_generate"))
        if identity == identity_before and not typed and not generate:
            return
        if identity is None:
            station_ocpp_enroll(station=station, identity=None)
            return
        if identity_before is not None and not typed and not generate:
            # Only the identity changed: the password stays what it was.
            station_ocpp_enroll(station=station, identity=identity, password=UNCHANGED)
            return
        password = station_ocpp_enroll(station=station, identity=identity, password=typed)
        if typed is None:
            self.message_user(
                request,
                f"OCPP password of {identity}: {password} (shown this once; only its hash is stored)",
                messages.WARNING,
            )

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
