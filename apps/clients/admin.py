from django.contrib import admin

from apps.clients.models import ApiClient, ApiKey


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ("name", "prefix", "scopes", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = ("prefix", "created_at", "last_used_at")


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ("name", "is_active", "rate_limit_per_s", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name",)
    inlines = [ApiKeyInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "client", "name", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("client",)
    search_fields = ("prefix", "name", "client__name")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")
