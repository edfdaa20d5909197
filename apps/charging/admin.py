from django.contrib import admin
from django.http import HttpRequest

from apps.charging.models import ChargingRequest


@admin.register(ChargingRequest)
class ChargingRequestAdmin(admin.ModelAdmin):
    """The decision log is a record: operators read and filter it, nobody edits it."""

    list_display = ("request_id", "station_id", "driver_token", "status", "reason", "source", "requested_at")
    list_filter = ("status", "reason", "source", ("requested_at", admin.DateFieldListFilter))
    search_fields = ("=request_id", "station_id", "driver_token")
    date_hierarchy = "requested_at"
    list_select_related = ("client",)
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
