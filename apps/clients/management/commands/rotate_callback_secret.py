from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.clients.models import ApiClient
from apps.clients.services import callback_secret_rotate


class Command(BaseCommand):
    help = "Give a client a new callback signing secret; the previous one keeps signing during --hours."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--client", required=True)
        parser.add_argument("--hours", type=float, default=24.0, help="rotation window (default 24)")

    def handle(self, *args: Any, **options: Any) -> None:
        client = ApiClient.objects.filter(name=options["client"]).first()
        if client is None:
            raise CommandError(f"no API client named {options['client']!r}")
        secret = callback_secret_rotate(client=client, window=timedelta(hours=options["hours"]))
        self.stdout.write(secret)
        self.stderr.write(f"Callbacks are signed with both secrets for {options['hours']:g} h.")
