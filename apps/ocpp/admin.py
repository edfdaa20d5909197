"""Read-only views of what stations told the OCPP gateway: connection, boot, heartbeat, status, transactions.

The gateway writes these rows; operators read them. Credentials are set on the station itself
(Access > Stations: OCPP identity and password).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.options import ShowFacets
from django.http import HttpRequest

from apps.core.readonly_admin import ReadOnlyAdmin
from apps.ocpp.models import ChargePointState, ChargingTransaction


class _ReadOnly(ReadOnlyAdmin):
    show_facets = ShowFacets.NEVER
    show_full_result_count = False


class ConnectedFilter(admin.SimpleListFilter):
    title = "connected"
    parameter_name = "connected"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "connected"), ("no", "not connected")]

    def queryset(self, request: HttpRequest, queryset):  # type: ignore[no-untyped-def]
        if self.value() == "yes":
            return queryset.filter(connected_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(connected_at__isnull=True)
        return queryset


@admin.register(ChargePointState)
class ChargePointStateAdmin(_ReadOnly):
    list_display = (
        "station",
        "identity",
        "connected",
        "protocol",
        "last_boot_at",
        "last_heartbeat_at",
        "last_status",
        "vendor",
        "model",
        "firmware_version",
    )
    list_filter = (ConnectedFilter, "protocol")
    search_fields = ("station__station_id", "station__ocpp_identity", "vendor", "model")
    list_select_related = ("station",)

    @admin.display(description="OCPP identity", ordering="station__ocpp_identity")
    def identity(self, state: ChargePointState) -> str:
        return state.station.ocpp_identity or ""

    @admin.display(description="connected", boolean=True, ordering="connected_at")
    def connected(self, state: ChargePointState) -> bool:
        return state.connected


@admin.register(ChargingTransaction)
class ChargingTransactionAdmin(_ReadOnly):
    list_display = (
        "id",
        "station",
        "protocol",
        "transaction_ref",
        "connector_id",
        "id_token",
        "authorization_status",
        "started_at",
        "stopped_at",
        "stop_reason",
    )
    list_filter = ("protocol", "authorization_status")
    search_fields = ("station__station_id", "id_token", "transaction_ref")
    list_select_related = ("station",)
