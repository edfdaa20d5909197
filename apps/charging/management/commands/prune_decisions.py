from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.charging.retention import decisions_prune, decisions_prune_count, duration_parse


class Command(BaseCommand):
    help = (
        "Delete decisions older than --older-than (e.g. 90d), with their callback deliveries and "
        "attempts, in batches; pending requests are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", required=True, help="age of the oldest decision to keep: 90d, 12w, 36h, 30m, 45s"
        )
        parser.add_argument(
            "--batch-size", type=int, default=1000, help="decisions deleted per transaction (default 1000)"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted, delete nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            age = duration_parse(options["older_than"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        before = timezone.now() - age
        if options["dry_run"]:
            count = decisions_prune_count(before=before)
            self.stdout.write(f"would delete {count} decisions requested before {before.isoformat()}")
            return
        self.stdout.write(f"deleting decisions requested before {before.isoformat()}")
        total = 0
        for progress in decisions_prune(before=before, batch_size=options["batch_size"]):
            total = progress.total_requests
            self.stdout.write(
                f"  {progress.requests} decisions, {progress.deliveries} deliveries, "
                f"{progress.attempts} attempts deleted ({total} decisions so far)"
            )
        self.stdout.write(self.style.SUCCESS(f"deleted {total} decisions"))
