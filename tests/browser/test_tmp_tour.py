import io, csv
from datetime import timedelta
import uuid
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from apps.access.models import TokenGroup, DriverToken, Grant
from apps.access.services import acl_insert
from apps.charging.models import ChargingRequest
from apps.clients.services import api_client_get_or_create

pytestmark = [pytest.mark.django_db(transaction=True)]

def test_tour(live_server, page, screenshot, tmp_path):
    base = live_server.url
    get_user_model().objects.create_superuser("op", "o@e.com", "pw-long-enough-123")
    g = TokenGroup.objects.create(name="fleet-north")
    for i in range(5):
        acl_insert(station_id=str(uuid.uuid4()), driver_token=f"RFID-0000000000000000{i:03d}")
    t = DriverToken.objects.create(value="APP-7f3a9c2e-0d41-4b8e-a6c5", type="app", group=g, valid_until=timezone.now()+timedelta(days=10))
    Grant.objects.create(group=g, station=None, note="fleet everywhere")
    now = timezone.now()
    rows = []
    for i in range(12):
        rows.append(ChargingRequest(request_id=uuid.uuid4(), station_id="5d1b6f3c-8a52-4c1e-9f0a-2b7d4e6c8a10", driver_token=f"NEWCARD-0000000000000{i%3:03d}", callback_url="http://127.0.0.1:9/cb", source="async", status="not_allowed", reason="unknown_token", requested_at=now-timedelta(minutes=i), decided_at=now-timedelta(minutes=i)+timedelta(milliseconds=12), deadline=now))
    ChargingRequest.objects.bulk_create(rows)
    api_client_get_or_create(name="acme-charging")
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "op"); page.fill("#id_password", "pw-long-enough-123"); page.click("input[type=submit]")
    page.goto(f"{base}/admin/"); screenshot("index")
    page.goto(f"{base}/admin/access/drivertoken/"); screenshot("tokens")
    page.goto(f"{base}/admin/access/drivertoken/import/"); screenshot("token-import-form")
    p = tmp_path / "tokens.csv"
    p.write_text("value,type,status,valid_until,group,note\nNEW-TOKEN-0000000000001,rfid,active,,,good\nshort,rfid,active,,,bad\nNEW-TOKEN-0000000000002,card,paused,,,bad2\nNEW-TOKEN-0000000000003,app,,next tuesday,no-such-fleet,bad3\n")
    page.set_input_files("#id_import_file", str(p)); page.click("input[type=submit]"); screenshot("token-import-errors")
    p.write_text("value,type,status,valid_until,group,note\nNEW-TOKEN-0000000000001,rfid,active,,,good\nRFID-0000000000000000001,rfid,blocked,2027-01-01,fleet-north,lost\n")
    page.goto(f"{base}/admin/access/drivertoken/import/")
    page.set_input_files("#id_import_file", str(p)); page.click("input[type=submit]"); screenshot("token-import-preview")
    page.goto(f"{base}/admin/access/grant/add/?token=APP-7f3a9c2e-0d41-4b8e-a6c5"); screenshot("grant-add")
    page.click("input[name=_save]"); screenshot("grant-add-errors")
    page.goto(f"{base}/admin/charging/chargingrequest/unknown-tokens/"); screenshot("unknown-tokens")
    page.check("input[name=sighting] >> nth=0"); page.click("button[name=action]"); screenshot("unknown-tokens-added")
    page.goto(f"{base}/admin/charging/chargingrequest/?reason=unknown_token&within=1h"); screenshot("decision-log-filtered")
    page.goto(f"{base}/admin/clients/apikey/add/"); 
    page.select_option("#id_client", label="acme-charging"); page.fill("#id_name", "backend"); page.check("input[value=authorize]")
    page.click("input[name=_save]"); screenshot("apikey-created")
    page.goto(f"{base}/admin/clients/apiclient/"); page.click("text=acme-charging"); screenshot("apiclient-change")
    page.goto(f"{base}/admin/access/grant/"); screenshot("grants")
    page.goto(f"{base}/admin/access/station/"); screenshot("stations")
