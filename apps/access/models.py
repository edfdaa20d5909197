"""The access-control list: stations, driver tokens, token groups and the grants between them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Station(models.Model):
    """A charging station, identified by the id stations send (see apps/access/identifiers.py)."""

    station_id = models.CharField(primary_key=True, max_length=36)
    name = models.CharField(max_length=200, blank=True)
    location = models.CharField(max_length=300, blank=True)
    enabled = models.BooleanField(default=True, help_text="a disabled station refuses every token")
    # OCPP (apps/access/credentials.py): the identity the station is configured with, beside the
    # station id the ACL and its grants use, and the hash of its password. Both empty: the station
    # does not connect over OCPP.
    ocpp_identity = models.CharField(
        max_length=48,
        unique=True,
        null=True,
        blank=True,
        help_text="what the station connects as: ws://…/ocpp/<identity>, the Basic auth user name",
    )
    ocpp_password_hash = models.CharField(max_length=128, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["station_id"]

    def __str__(self) -> str:
        return self.name or self.station_id

    @property
    def has_ocpp_password(self) -> bool:
        return bool(self.ocpp_password_hash)


class TokenGroup(models.Model):
    """A fleet or any set of tokens that share grants."""

    name = models.CharField(max_length=100, unique=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DriverToken(models.Model):
    """A driver's RFID card or app token. Never hard-deleted: block it instead (OCPI keeps tokens)."""

    class Type(models.TextChoices):
        RFID = "rfid", "RFID"
        APP = "app", "app"
        OTHER = "other", "other"

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        BLOCKED = "blocked", "blocked"

    value = models.CharField(max_length=80, unique=True)
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.RFID)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    valid_until = models.DateTimeField(null=True, blank=True)
    group = models.ForeignKey(
        TokenGroup, null=True, blank=True, on_delete=models.PROTECT, related_name="tokens"
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["value"]

    def __str__(self) -> str:
        return self.value


class Grant(models.Model):
    """Permission for a token (or every token of a group) at one station, or at all stations."""

    token = models.ForeignKey(
        DriverToken, null=True, blank=True, on_delete=models.PROTECT, related_name="grants"
    )
    group = models.ForeignKey(
        TokenGroup, null=True, blank=True, on_delete=models.PROTECT, related_name="grants"
    )
    station = models.ForeignKey(
        Station,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="grants",
        help_text="empty: every station",
    )
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(token__isnull=False, group__isnull=True) | Q(token__isnull=True, group__isnull=False)
                ),
                name="grant_token_xor_group",
            ),
        ]
        indexes = [
            # The decision reads only these: live grants of one token or one group.
            models.Index(
                fields=["token", "station"], name="grant_token_station", condition=Q(revoked_at=None)
            ),
            models.Index(
                fields=["group", "station"], name="grant_group_station", condition=Q(revoked_at=None)
            ),
        ]

    def __str__(self) -> str:
        holder = self.token or self.group
        return f"{holder} @ {self.station or 'all stations'}"
