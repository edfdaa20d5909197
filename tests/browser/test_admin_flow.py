"""An operator adds a token and a grant in Django admin, in a real browser; the pipeline then allows it.

The whole path is real: chromium drives the admin served by the live server, and the charging
request goes through the API, Kafka, the bridge and a Celery worker to the callback receiver.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from apps.access.models import DriverToken, Grant
from tests.integration.conftest import Pipeline

# The station id as an operator may paste it (upper case, no hyphens) and as it is stored.
STATION_TYPED = "7C1E5A9B2D4F4E6A8B0C1D2E3F4A5B6C"
STATION = "7c1e5a9b-2d4f-4e6a-8b0c-1d2e3f4a5b6c"
TOKEN = "RFID-04A1B2C3D4E5F6-browser"
OPERATOR, PASSWORD = "operator", "a-long-operator-password-1"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_operator_adds_a_token_and_a_grant_then_the_station_is_allowed(
    live_server: object,
    pipeline: Pipeline,
    page: Page,
    screenshot: Callable[[str], Path],
) -> None:
    base = str(live_server.url)  # type: ignore[attr-defined]
    get_user_model().objects.create_superuser(OPERATOR, "operator@example.com", PASSWORD)
    pipeline.start_bridge()
    pipeline.start_worker()

    # Log in.
    page.goto(f"{base}/admin/")
    page.fill("#id_username", OPERATOR)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_contain_text("Charge Service")

    # Add the token.
    page.goto(f"{base}/admin/access/drivertoken/add/")
    page.fill("#id_value", TOKEN)
    page.select_option("#id_type", "rfid")
    page.fill("#id_note", "new card, added in the browser test")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")

    # Add its grant from the token list's "add grant" link: the token is filled in already.
    page.get_by_role("row", name=TOKEN).get_by_role("link", name="add grant").click()
    expect(page.locator("#id_token")).to_have_value(TOKEN)
    page.fill("#id_station_id", STATION_TYPED)
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    expect(page.locator("#result_list")).to_contain_text(STATION)
    screenshot("grants")

    grant = Grant.objects.get(token__value=TOKEN)
    assert grant.station_id == STATION
    assert grant.created_by is not None
    assert grant.created_by.username == OPERATOR
    assert DriverToken.objects.get(value=TOKEN).status == DriverToken.Status.ACTIVE

    # A charging request for that token at that station, through the API and the whole pipeline.
    accepted = httpx.post(
        f"{base}/api/v1/charging-requests",
        json={"station_id": STATION_TYPED, "driver_token": TOKEN, "callback_url": pipeline.receiver.url()},
        headers={"Authorization": f"Bearer {pipeline.api_key}"},
        timeout=10,
    )
    assert accepted.status_code == 202, accepted.text
    request_id = accepted.json()["request_id"]

    [callback] = pipeline.receiver.wait_for(request_id)
    assert (callback.json["status"], callback.json["reason"]) == ("allowed", "granted")
    assert callback.json["station_id"] == STATION

    # The operator finds the decision in the log by its request id.
    page.goto(f"{base}/admin/charging/chargingrequest/")
    page.fill("#searchbar", request_id)
    page.press("#searchbar", "Enter")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(TOKEN)
    expect(rows.first).to_contain_text("allowed")
    screenshot("decision-log")
