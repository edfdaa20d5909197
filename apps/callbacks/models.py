"""Callback deliveries: one row per decision, one attempt row per try (after Saleor's webhooks)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class CallbackDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        RETRYING = "retrying", "retrying"
        DELIVERED = "delivered", "delivered"
        STOPPED = "stopped", "stopped (410 Gone)"
        FAILED = "failed", "failed (schedule exhausted)"

    request = models.OneToOneField(
        "charging.ChargingRequest", on_delete=models.CASCADE, related_name="delivery", primary_key=True
    )
    client = models.ForeignKey(
        "clients.ApiClient", null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    url = models.CharField(max_length=2048)
    # The exact bytes that are signed and sent, built once when the decision is made.
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When the broker took a deliver task for it that no worker has taken yet (None: no task is
    # waiting; set after the publish, cleared by the claim). The dispatch sweep skips deliveries
    # whose task is still queued, so a backlog in the callbacks queue is not multiplied by duplicates.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "callback deliveries"
        ordering = ["-created_at"]
        indexes = [
            # The dispatch sweep reads only open deliveries that are due.
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_due",
                condition=Q(status__in=["pending", "retrying"]),
            ),
            models.Index(fields=["status", "-created_at"], name="delivery_status"),
            models.Index(fields=["client", "-created_at"], name="delivery_client"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.request_id} {self.status}"


class CallbackAttempt(models.Model):
    delivery = models.ForeignKey(CallbackDelivery, on_delete=models.CASCADE, related_name="attempt_rows")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="attempt_number_once")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"
