"""Stations: enable and disable, search by id in any accepted form."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import ShowFacets
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from apps.access.admin.common import ServiceWritesMixin, changelist_url, station_search_q
from apps.access.identifiers import station_id_normalize
from apps.access.models import Grant, Station
from apps.access.services import station_create, station_disable, station_enable, station_update


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
        return format_html('<a href="{}">grants here</a>', changelist_url(Grant, station__exact=station.pk))

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
