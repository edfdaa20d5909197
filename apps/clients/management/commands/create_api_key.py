from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.clients.services import ALL_SCOPES, api_client_get_or_create, api_key_create


class Command(BaseCommand):
    help = (
        "Create an API key for a client (created if missing). The key is printed once; only its hash is kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--client", required=True, help="client name")
        parser.add_argument("--scopes", nargs="+", required=True, choices=ALL_SCOPES, metavar="SCOPE")
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args: Any, **options: Any) -> None:
        client = api_client_get_or_create(name=options["client"])
        try:
            _, plaintext = api_key_create(client=client, scopes=options["scopes"], name=options["name"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(plaintext)
        self.stderr.write("Store this key now: it cannot be shown again.")
