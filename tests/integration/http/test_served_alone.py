"""What only a server process of its own shows: nothing the test process loads is there to help."""

from __future__ import annotations

import httpx

from apps.charging.models import ChargingRequest
from tests.integration.http.conftest import ApiServer

STATION = "5f0c6a0e-4b1e-4d55-9a7e-3c1f2b9d8e71"
TOKEN = "SERVED-TOKEN-0123456789"


def test_a_synchronous_decision_with_a_callback_is_answered_and_its_delivery_queued(
    api_server: ApiServer, api_key: str
) -> None:
    # The api publishes the callback task through the project's Celery app and its Redis broker; a
    # process that never loaded that app published to Celery's default broker (AMQP) and failed.
    body = {"station_id": STATION, "driver_token": TOKEN, "callback_url": "http://127.0.0.1:9/cb"}

    response = httpx.post(
        f"{api_server.url}/api/checkauthority/", json=body, headers={"Authorization": f"Bearer {api_key}"}
    )

    assert response.status_code == 200
    assert response.json()["status"] == "not_allowed"
    logged = ChargingRequest.objects.select_related("delivery").get(request_id=response.json()["request_id"])
    assert logged.delivery.status == "pending"
