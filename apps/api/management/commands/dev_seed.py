from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.access.services import station_ensure, station_ocpp_enroll
from apps.clients.services import ALL_SCOPES, api_client_get_or_create, api_key_ensure

DEV_CLIENT = "dev"
# The dev station's ACL id; a simulator connects as OCPP_STATION_ID with OCPP_STATION_PASSWORD.
DEV_STATION = "00000000-0000-4000-8000-00000000d001"


class Command(BaseCommand):
    help = "Create the dev admin user and the dev API client from .local/dev.env values (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user_name = os.environ["CHARGE_ADMIN_USER"]
            password = os.environ["CHARGE_ADMIN_PASSWORD"]
            api_key = os.environ["CHARGE_API_KEY"]
            callback_secret = os.environ["CHARGE_CALLBACK_SECRET"]
        except KeyError as exc:
            raise CommandError(f"{exc.args[0]} is not set; run it through `make run`.") from exc

        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(
            username=user_name, defaults={"is_staff": True, "is_superuser": True}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()

        client = api_client_get_or_create(name=DEV_CLIENT, callback_secret=callback_secret)
        # The dev key drives the quickstart and local load tests: far above the default rate limit.
        client.rate_limit_per_s = 5000
        client.save(update_fields=["rate_limit_per_s"])
        api_key_ensure(client=client, plaintext=api_key, scopes=ALL_SCOPES)
        ocpp_identity = os.environ.get("OCPP_STATION_ID")
        if ocpp_identity:
            station = station_ensure(station_id=DEV_STATION)
            station_ocpp_enroll(
                station=station, identity=ocpp_identity, password=os.environ["OCPP_STATION_PASSWORD"]
            )
        self.stdout.write(
            f"dev admin {user_name!r}, API client {DEV_CLIENT!r} and OCPP station {ocpp_identity!r} ready"
        )
