from django.contrib import admin

from apps.access.models import DriverToken, Grant, Station, TokenGroup


@admin.register(Station)
class StationAdmin(admin.ModelAdmin):
    list_display = ("station_id", "name", "location", "enabled", "created_at")
    list_filter = ("enabled",)
    search_fields = ("station_id", "name", "location")


@admin.register(TokenGroup)
class TokenGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(DriverToken)
class DriverTokenAdmin(admin.ModelAdmin):
    list_display = ("value", "type", "status", "valid_until", "group", "created_at")
    list_filter = ("status", "type", "group")
    search_fields = ("value", "note")


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    list_display = ("__str__", "token", "group", "station", "valid_from", "valid_until", "revoked_at")
    list_filter = ("revoked_at", "group")
    search_fields = ("token__value", "station__station_id", "group__name")
    raw_id_fields = ("token", "station")
