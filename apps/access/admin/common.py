"""Pieces every access-control admin shares: links to filtered lists, the station search, writes
through the services, CSV import and export."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.options import ShowFacets
from django.db.models import Model, Q
from django.http import HttpRequest
from django.urls import reverse
from import_export.admin import ImportExportModelAdmin  # type: ignore[import-untyped]
from import_export.formats.base_formats import CSV  # type: ignore[import-untyped]

from apps.access.identifiers import station_id_normalize


def changelist_url(model: type[Model], **params: object) -> str:
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
