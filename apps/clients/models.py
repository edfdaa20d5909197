"""API clients (stations, charging platforms) and their hashed, scoped API keys."""

from __future__ import annotations

from datetime import datetime

from django.db import models


class Scope(models.TextChoices):
    CHARGING_WRITE = "charging:write", "submit charging requests"
    CHARGING_READ = "charging:read", "read the decision log"
    AUTHORIZE = "authorize", "synchronous authorization"
    ACL_WRITE = "acl:write", "change tokens, stations and grants"
    ACL_READ = "acl:read", "read tokens, stations and grants"


class ApiClient(models.Model):
    """A caller of the API: owns keys, signs its callbacks with its own secret."""

    name = models.CharField(max_length=100, unique=True)
    callback_secret = models.CharField(max_length=128, help_text="HMAC key for X-Charge-Signature")
    # During a rotation the previous secret signs too, until this moment, so receivers can switch over.
    previous_callback_secret = models.CharField(max_length=128, blank=True)
    previous_secret_valid_until = models.DateTimeField(null=True, blank=True)
    allowed_callback_hosts = models.JSONField(
        default=list, blank=True, help_text="hosts this client's callbacks may reach even when private"
    )
    rate_limit_per_s = models.PositiveIntegerField(
        null=True, blank=True, help_text="requests per second; empty means the default from settings"
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "API client"

    def __str__(self) -> str:
        return self.name

    def signing_secrets(self, *, at: datetime) -> list[str]:
        """The secrets that sign a callback at `at`: the current one, and the previous during rotation."""
        secrets = [self.callback_secret]
        if (
            self.previous_callback_secret
            and self.previous_secret_valid_until is not None
            and at < self.previous_secret_valid_until
        ):
            secrets.append(self.previous_callback_secret)
        return secrets


class ApiKey(models.Model):
    """One key of a client. Only the prefix (for lookup) and a hash of the secret part are stored."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.client.name}:{self.prefix}"
