from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.charging.topics import KafkaError, topics_ensure


class Command(BaseCommand):
    help = "Create the charging_requests topic and its dead-letter topic if missing (safe to run twice)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--wait", type=float, default=0.0, help="seconds to wait for the broker to come up (default 0)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            outcome = topics_ensure(wait_s=options["wait"])
        except KafkaError as exc:
            raise CommandError(f"Kafka is not reachable ({exc}); is the broker running?") from exc
        for topic, state in outcome.items():
            self.stdout.write(f"{topic}: {state}")
