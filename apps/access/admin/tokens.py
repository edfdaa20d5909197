"""Driver tokens: validity, blocking and unblocking, CSV import and export."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from apps.access.admin.common import CsvImportExportAdmin, ServiceWritesMixin, changelist_url
from apps.access.identifiers import DRIVER_TOKEN_RULE, driver_token_check
from apps.access.models import DriverToken, Grant
from apps.access.resources import DATETIME_HELP, DriverTokenResource
from apps.access.selectors import window_q
from apps.access.services import token_block, token_create, token_unblock, token_update


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
                return queryset.filter(window_q(at=now, has_from=False))
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
            "value": f"{DRIVER_TOKEN_RULE}, exactly as the card, app or station sends it (case counts)",
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
            changelist_url(Grant, token__exact=token.pk),
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
