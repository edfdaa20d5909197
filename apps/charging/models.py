"""The decision log: one row per charging request, from acceptance (pending) to its decision."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from apps.access.policy import Status


class ChargingRequest(models.Model):
    class Source(models.TextChoices):
        ASYNC = "async", "v1 charging request (Kafka)"
        LEGACY = "legacy", "original chargingRequestValidator (Kafka)"
        SYNC = "sync", "v1 authorize (synchronous)"
        LEGACY_SYNC = "legacy_sync", "original checkauthority (synchronous)"
        TOPIC = "topic", "another producer on the topic"
        OCPP = "ocpp", "an OCPP station (gateway, synchronous)"

    class DecisionStatus(models.TextChoices):
        PENDING = Status.PENDING.value, "pending"
        ALLOWED = Status.ALLOWED.value, "allowed"
        NOT_ALLOWED = Status.NOT_ALLOWED.value, "not allowed"
        UNKNOWN = Status.UNKNOWN.value, "unknown"
        INVALID = Status.INVALID.value, "invalid"

    request_id = models.UUIDField(primary_key=True)
    client = models.ForeignKey(
        "clients.ApiClient", null=True, blank=True, on_delete=models.SET_NULL, related_name="requests"
    )
    # Raw values up to 255 characters: a malformed message is logged with what it carried.
    station_id = models.CharField(max_length=255)
    driver_token = models.CharField(max_length=255)
    callback_url = models.CharField(max_length=2048, blank=True)
    source = models.CharField(max_length=12, choices=Source.choices)
    status = models.CharField(max_length=12, choices=DecisionStatus.choices, default=DecisionStatus.PENDING)
    reason = models.CharField(max_length=32, blank=True)
    requested_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField()
    kafka_partition = models.IntegerField(null=True, blank=True)
    kafka_offset = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        indexes = [
            models.Index(fields=["-requested_at", "-request_id"], name="request_log_order"),
            models.Index(fields=["station_id", "-requested_at"], name="request_station"),
            models.Index(fields=["driver_token", "-requested_at"], name="request_token"),
            models.Index(fields=["status", "reason", "-requested_at"], name="request_status"),
            models.Index(fields=["client", "-requested_at"], name="request_client"),
            # The overdue sweep reads only the pending rows, oldest deadline first.
            models.Index(fields=["deadline"], name="request_pending_deadline", condition=Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.status}"
