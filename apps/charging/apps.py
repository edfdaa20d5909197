from django.apps import AppConfig


class ChargingConfig(AppConfig):
    name = "apps.charging"
    label = "charging"

    def ready(self) -> None:
        # The pending and overdue gauges read the decision log, which is this app's.
        from apps.charging.selectors import charging_requests_pending_counts  # noqa: PLC0415 - models loaded now
        from apps.monitoring.exposition import pending_counts_register  # noqa: PLC0415

        pending_counts_register(lambda now: charging_requests_pending_counts(now=now))
