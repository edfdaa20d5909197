"""What the OCPP gateway knows of each station's connection, and the transactions stations report.

The ACL's Station (apps.access) says who a station is and may do; these rows say what it last told
us. Written by the gateway process (apps/ocpp/gateway.py) only.
"""

from __future__ import annotations

from django.db import models

from apps.access.models import Station
from apps.charging.models import ChargingRequest


class ChargePointState(models.Model):
    station = models.OneToOneField(
        Station, primary_key=True, on_delete=models.CASCADE, related_name="charge_point"
    )
    # The WebSocket subprotocol the station speaks: "ocpp1.6" or "ocpp2.0.1".
    protocol = models.CharField(max_length=12, blank=True)
    # Set while a WebSocket is open (one gateway process: it clears them all when it starts).
    connected_at = models.DateTimeField(null=True, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True)
    vendor = models.CharField(max_length=50, blank=True)
    model = models.CharField(max_length=50, blank=True)
    firmware_version = models.CharField(max_length=50, blank=True)
    serial_number = models.CharField(max_length=50, blank=True)
    last_boot_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The last StatusNotification, as "connector 1: Available" (1.6 adds the error code when not NoError).
    last_status = models.CharField(max_length=200, blank=True)
    last_status_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "charge point"

    def __str__(self) -> str:
        return str(self.station_id)

    @property
    def connected(self) -> bool:
        return self.connected_at is not None


class ChargingTransaction(models.Model):
    """A transaction as a station reports it: 1.6 StartTransaction/StopTransaction, 2.0.1 TransactionEvent."""

    # An int, not the project's BigAutoField: OCPP 1.6's transactionId is a JSON integer that stations
    # keep in 32 bits.
    id = models.AutoField(primary_key=True)
    station = models.ForeignKey(Station, on_delete=models.PROTECT, related_name="transactions")
    protocol = models.CharField(max_length=12)
    # 2.0.1's transactionId, chosen by the station; none for 1.6, whose transactionId is our id.
    transaction_ref = models.CharField(max_length=36, null=True, blank=True)  # noqa: DJ001 - NULL: no ref, unique apart
    connector_id = models.IntegerField(null=True, blank=True)
    id_token = models.CharField(max_length=36, blank=True)
    # The decision the station got for id_token when the transaction started (the decision log's row).
    decision = models.ForeignKey(
        ChargingRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    authorization_status = models.CharField(max_length=24, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    meter_start = models.BigIntegerField(null=True, blank=True)
    meter_stop = models.BigIntegerField(null=True, blank=True)
    stop_reason = models.CharField(max_length=32, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # NULLs are distinct, so 1.6 rows (no ref) never collide.
            models.UniqueConstraint(fields=["station", "transaction_ref"], name="transaction_station_ref"),
        ]

    def __str__(self) -> str:
        return f"{self.station_id} {self.transaction_ref}"
