"""Token groups (fleets): their tokens and grants one click away."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from apps.access.admin.common import ServiceWritesMixin, changelist_url
from apps.access.models import DriverToken, Grant, TokenGroup
from apps.access.services import token_group_create, token_group_update


@admin.register(TokenGroup)
class TokenGroupAdmin(ServiceWritesMixin, admin.ModelAdmin):
    list_display = ("name", "note", "links", "created_at")
    search_fields = ("name", "note")
    list_filter = (("created_at", admin.DateFieldListFilter),)

    @admin.display(description="")
    def links(self, group: TokenGroup) -> str:
        return format_html(
            '<a href="{}">tokens</a> · <a href="{}">grants</a>',
            changelist_url(DriverToken, group__id__exact=group.pk),
            changelist_url(Grant, group__id__exact=group.pk),
        )

    def service_create(self, request: HttpRequest, form: Any) -> TokenGroup:
        return token_group_create(name=form.cleaned_data["name"], note=form.cleaned_data["note"])

    def service_update(self, request: HttpRequest, obj: TokenGroup, form: Any) -> None:
        token_group_update(group=obj, name=form.cleaned_data["name"], note=form.cleaned_data["note"])
