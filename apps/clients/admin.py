"""Admin for API clients and their keys.

A new key's plaintext is shown once, in the message after saving; only its prefix and a hash are
stored (apps.clients.services.api_key_create). Keys are revoked, never deleted, so the decision log
and last-use times keep pointing at something.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from apps.clients.keys import key_parse
from apps.clients.models import ApiClient, ApiKey, Scope
from apps.clients.services import (
    api_clients_activate,
    api_clients_deactivate,
    api_key_create,
    api_key_revoke,
    api_key_update,
    callback_secret_generate,
)


class ApiKeyInline(admin.TabularInline):
    """The client's keys, read-only: keys are made on their own add page, where the plaintext is shown."""

    model = ApiKey
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("prefix", "name", "scopes", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ApiClientForm(forms.ModelForm):
    class Meta:
        model = ApiClient
        fields = ("name", "is_active", "rate_limit_per_s", "allowed_callback_hosts", "callback_secret")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "callback_secret" in self.fields and self.instance.pk is None:
            self.fields["callback_secret"].initial = callback_secret_generate()


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    form = ApiClientForm
    list_display = ("name", "is_active", "rate_limit_per_s", "live_keys", "created_at")
    list_filter = ("is_active", ("created_at", admin.DateFieldListFilter))
    search_fields = ("name",)
    inlines = [ApiKeyInline]
    actions = ["activate", "deactivate"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiClient]:
        live = Q(keys__revoked_at=None) & (Q(keys__expires_at=None) | Q(keys__expires_at__gt=timezone.now()))
        return super().get_queryset(request).annotate(live_key_count=Count("keys", filter=live))

    def get_readonly_fields(self, request: HttpRequest, obj: ApiClient | None = None) -> tuple[str, ...]:
        # Changing the secret breaks every receiver verifying signatures: that is a rotation, not an edit.
        return ("callback_secret", "add_key", "created_at") if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: ApiClient | None = None) -> tuple[str, ...]:
        fields = ("name", "is_active", "rate_limit_per_s", "allowed_callback_hosts", "callback_secret")
        return (*fields, "add_key", "created_at") if obj is not None else fields

    @admin.display(description="live keys", ordering="live_key_count")
    def live_keys(self, client: Any) -> int:
        return int(client.live_key_count)

    @admin.display(description="new key")
    def add_key(self, client: ApiClient) -> str:
        url = reverse("admin:clients_apikey_add")
        return format_html(
            '<a href="{}?client={}" class="addlink">Add a key for {}</a>', url, client.pk, client
        )

    @admin.action(description="Activate the selected clients", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        changed = api_clients_activate(clients=queryset)
        self.message_user(request, f"Activated {changed} client(s).", messages.SUCCESS)

    @admin.action(
        description="Deactivate the selected clients (all their keys stop working)", permissions=["change"]
    )
    def deactivate(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        changed = api_clients_deactivate(clients=queryset)
        self.message_user(request, f"Deactivated {changed} client(s).", messages.SUCCESS)


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices, widget=forms.CheckboxSelectMultiple, help_text="what this key may do"
    )

    class Meta:
        model = ApiKey
        fields = ("client", "name", "scopes", "expires_at")
        help_texts = {"expires_at": "empty: until revoked"}


class ApiKeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("live", "live"), ("expired", "expired"), ("revoked", "revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        match self.value():
            case "live":
                return queryset.filter(revoked_at=None).filter(Q(expires_at=None) | Q(expires_at__gt=now))
            case "expired":
                return queryset.filter(revoked_at=None, expires_at__lte=now)
            case "revoked":
                return queryset.exclude(revoked_at=None)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = (
        "prefix",
        "client",
        "name",
        "scope_list",
        "state",
        "created_at",
        "last_used_at",
        "expires_at",
    )
    list_filter = (ApiKeyStateFilter, "client", ("created_at", admin.DateFieldListFilter))
    search_fields = ("prefix", "name", "client__name")
    search_help_text = "key prefix (or the whole key), key name or client name"
    list_select_related = ("client",)
    actions = ["revoke"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return ("client", "prefix", "created_at", "last_used_at", "revoked_at")

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("client", "name", "scopes", "expires_at")
        return (
            "client",
            "prefix",
            "name",
            "scopes",
            "expires_at",
            "created_at",
            "last_used_at",
            "revoked_at",
        )

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False  # revoke instead

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[ApiKey], search_term: str
    ) -> tuple[QuerySet[ApiKey], bool]:
        # A whole key pasted into the search box finds its row by prefix (the secret part is never stored).
        parsed = key_parse(search_term.strip())
        if parsed is not None:
            return queryset.filter(prefix=parsed.prefix), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="scopes")
    def scope_list(self, key: ApiKey) -> str:
        return ", ".join(key.scopes)

    @admin.display(description="state")
    def state(self, key: ApiKey) -> str:
        if key.revoked_at is not None:
            return "revoked"
        if key.expires_at is not None and key.expires_at <= timezone.now():
            return "expired"
        return "live"

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        if change:
            return form.save(commit=False)
        data = form.cleaned_data
        key, plaintext = api_key_create(
            client=data["client"], scopes=data["scopes"], name=data["name"], expires_at=data["expires_at"]
        )
        messages.warning(
            request,
            format_html(
                "New API key for {}: <code id='new-api-key'>{}</code> Copy it now: only its hash is stored, "
                "so it cannot be shown again.",
                key.client,
                plaintext,
            ),
        )
        return key

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            data = form.cleaned_data
            api_key_update(key=obj, name=data["name"], scopes=data["scopes"], expires_at=data["expires_at"])

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """An API key has no many-to-many fields and no inlines: nothing else to save."""

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        changed = 0
        for key in queryset.filter(revoked_at=None).iterator():
            api_key_revoke(key=key)
            changed += 1
        self.message_user(request, f"Revoked {changed} key(s).", messages.SUCCESS)
