from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.callbacks.models import CallbackAttempt, CallbackDelivery
from apps.callbacks.services import delivery_redeliver


class CallbackAttemptInline(admin.TabularInline):
    model = CallbackAttempt
    extra = 0
    can_delete = False
    fields = ("number", "started_at", "duration_ms", "http_status", "error", "response_excerpt")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(CallbackDelivery)
class CallbackDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "request_id",
        "client",
        "status",
        "attempts",
        "last_http_status",
        "next_attempt_at",
        "url",
    )
    list_filter = ("status", "client", "last_http_status")
    search_fields = ("=request__request_id", "url")
    readonly_fields = [field.name for field in CallbackDelivery._meta.fields]
    inlines = [CallbackAttemptInline]
    actions = ["redeliver"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Redeliver the selected callbacks now")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[CallbackDelivery]) -> None:
        for delivery in queryset:
            delivery_redeliver(delivery=delivery)
        self.message_user(
            request, f"{queryset.count()} deliveries queued for another attempt.", messages.SUCCESS
        )
