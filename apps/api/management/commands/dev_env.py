from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.access.credentials import password_generate
from apps.clients.keys import key_generate


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.startswith("#"):
                values[name.strip()] = value.strip()
    return values


class Command(BaseCommand):
    help = "Write .local/dev.env for `make run` (keeps existing credentials) and print the stack's addresses."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        old = _read_env_file(path)
        api_port = os.environ.get("API_PORT", "8000")
        flower_port = os.environ.get("FLOWER_PORT", "5555")
        ocpp_port = os.environ.get("OCPP_PORT", "9000")
        values = {
            "CHARGE_API_URL": f"http://127.0.0.1:{api_port}/api",
            "CHARGE_API_KEY": old.get("CHARGE_API_KEY") or key_generate(),
            "CHARGE_CALLBACK_SECRET": old.get("CHARGE_CALLBACK_SECRET") or secrets.token_urlsafe(32),
            "CHARGE_ADMIN_USER": old.get("CHARGE_ADMIN_USER") or "admin",
            "CHARGE_ADMIN_PASSWORD": old.get("CHARGE_ADMIN_PASSWORD") or secrets.token_urlsafe(12),
            "FLOWER_URL": f"http://127.0.0.1:{flower_port}",
            "FLOWER_USER": old.get("FLOWER_USER") or "flower",
            "FLOWER_PASSWORD": old.get("FLOWER_PASSWORD") or secrets.token_urlsafe(12),
            "OCPP_URL": f"ws://127.0.0.1:{ocpp_port}/ocpp",
            "OCPP_STATION_ID": old.get("OCPP_STATION_ID") or "DEV-STATION-0001",
            "OCPP_STATION_PASSWORD": old.get("OCPP_STATION_PASSWORD") or password_generate(),
            "SECRET_KEY": old.get("SECRET_KEY") or secrets.token_urlsafe(50),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
        path.chmod(0o600)
        base = values["CHARGE_API_URL"].removesuffix("/api")
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "Charge Service is starting. Ctrl-C stops every process.",
                    f"  API          {values['CHARGE_API_URL']}/",
                    f"  Health       {values['CHARGE_API_URL']}/healthz",
                    f"  API docs     {values['CHARGE_API_URL']}/docs",
                    f"  Admin        {base}/admin/   user {values['CHARGE_ADMIN_USER']}"
                    f"  password {values['CHARGE_ADMIN_PASSWORD']}",
                    f"  Flower       {values['FLOWER_URL']}/   user {values['FLOWER_USER']}"
                    f"  password {values['FLOWER_PASSWORD']}",
                    f"  API key      {values['CHARGE_API_KEY']}   (every scope)",
                    f"  Callbacks    signed with {values['CHARGE_CALLBACK_SECRET']}",
                    f"  OCPP         {values['OCPP_URL']}/{values['OCPP_STATION_ID']}"
                    f"   user {values['OCPP_STATION_ID']}  password {values['OCPP_STATION_PASSWORD']}"
                    "   (ocpp1.6 or ocpp2.0.1)",
                    f"  Written to   {path}",
                    "",
                ]
            )
        )
