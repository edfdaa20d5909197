"""Callback delivery on a real worker to real receivers on loopback: signed, retried, recorded."""

from __future__ import annotations

from datetime import timedelta

from django.test import Client

from apps.access.services import acl_insert
from apps.callbacks.models import CallbackAttempt, CallbackDelivery
from apps.callbacks.signing import signature_verify
from apps.clients.services import callback_secret_rotate
from harness.processes import wait_until
from tests.integration.conftest import Pipeline
from tests.receiver import CallbackReceiver, Received, Reply, now_unix

STATION = "5f0c6a0e-4b1e-4d55-9a7e-3c1f2b9d8e71"
TOKEN = "DRIVER-TOKEN-0123456789"


def _decide(pipeline: Pipeline, client: Client, callback_url: str, token: str = TOKEN) -> str:
    """A synchronous decision with a callback: its delivery is queued as the decision commits."""
    answer = pipeline.post_json(
        client,
        "/api/checkauthority/",
        {"station_id": STATION, "driver_token": token, "callback_url": callback_url},
    ).json()
    return str(answer["request_id"])


def _attempts(request_id: str) -> list[CallbackAttempt]:
    return list(CallbackAttempt.objects.filter(delivery_id=request_id).order_by("number"))


def test_a_500_is_retried_and_the_second_attempt_is_numbered_and_signed(
    pipeline: Pipeline, client: Client
) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)
    pipeline.receiver.reply = lambda got: Reply(500 if len(pipeline.receiver.received) == 1 else 200)
    pipeline.start_worker()

    request_id = _decide(pipeline, client, pipeline.receiver.url())

    first, second = pipeline.receiver.wait_for(request_id, count=2, timeout=30)
    assert first.headers["x-charge-attempt"] == "1"
    assert second.headers["x-charge-attempt"] == "2"
    assert first.body == second.body
    for got in (first, second):
        assert signature_verify(
            header=got.headers["x-charge-signature"],
            secret=pipeline.api_client.callback_secret,
            body=got.body,
            now=now_unix(),
        )
    wait_until(lambda: len(_attempts(request_id)) == 2, timeout=10, what="two attempt rows")
    assert [a.http_status for a in _attempts(request_id)] == [500, 200]
    delivery = CallbackDelivery.objects.get(request_id=request_id)
    assert (delivery.status, delivery.attempts, delivery.last_http_status) == ("delivered", 2, 200)


def test_during_a_secret_rotation_both_secrets_sign(pipeline: Pipeline, client: Client) -> None:
    old_secret = pipeline.api_client.callback_secret
    new_secret = callback_secret_rotate(client=pipeline.api_client, window=timedelta(hours=1))
    pipeline.start_worker()

    [got] = pipeline.receiver.wait_for(_decide(pipeline, client, pipeline.receiver.url()))

    header = got.headers["x-charge-signature"]
    assert header.count("v1=") == 2
    for secret in (old_secret, new_secret):
        assert signature_verify(header=header, secret=secret, body=got.body, now=now_unix())
    assert not signature_verify(header=header, secret="not-the-secret", body=got.body, now=now_unix())


def test_a_hanging_receiver_times_out_while_other_callbacks_arrive(
    pipeline: Pipeline, client: Client
) -> None:
    hanging = CallbackReceiver(lambda got: Reply(200, hang_s=20)).start()
    pipeline.start_worker(queues="authorize")
    pipeline.start_worker(queues="callbacks", pool="threads", concurrency=8)
    try:
        slow_id = _decide(pipeline, client, hanging.url())
        wait_until(lambda: len(hanging.received) == 1, timeout=15, what="the slow callback to be in flight")

        fast_ids = [_decide(pipeline, client, pipeline.receiver.url()) for _ in range(10)]
        for request_id in fast_ids:
            pipeline.receiver.wait_for(request_id, timeout=10)

        # All ten arrived while the slow POST was still hanging: its attempt is not over yet.
        assert _attempts(slow_id) == []
        wait_until(lambda: len(_attempts(slow_id)) == 1, timeout=15, what="the timeout to be recorded")
        [attempt] = _attempts(slow_id)
        assert attempt.http_status is None
        assert attempt.error.startswith("timeout")
        assert 4_500 <= attempt.duration_ms <= 7_000
        assert CallbackDelivery.objects.get(request_id=slow_id).status == "retrying"
    finally:
        hanging.stop()


def test_a_redirect_is_not_followed(pipeline: Pipeline, client: Client) -> None:
    target = pipeline.receiver.url("/elsewhere")
    pipeline.receiver.reply = lambda got: (
        Reply(302, headers={"Location": target}) if got.path == "/cb" else Reply()
    )
    pipeline.start_worker()

    request_id = _decide(pipeline, client, pipeline.receiver.url("/cb"))

    wait_until(lambda: len(_attempts(request_id)) >= 1, timeout=15, what="the attempt row")
    assert _attempts(request_id)[0].http_status == 302
    assert CallbackDelivery.objects.get(request_id=request_id).status == "retrying"
    assert [got.path for got in pipeline.receiver.received] == ["/cb"]


def test_410_gone_stops_the_delivery(pipeline: Pipeline, client: Client) -> None:
    pipeline.receiver.reply = lambda got: Reply(410)
    pipeline.start_worker()

    request_id = _decide(pipeline, client, pipeline.receiver.url())

    wait_until(
        lambda: CallbackDelivery.objects.get(request_id=request_id).status == "stopped",
        timeout=15,
        what="the delivery to stop",
    )
    delivery = CallbackDelivery.objects.get(request_id=request_id)
    assert (delivery.attempts, delivery.next_attempt_at) == (1, None)


def test_admin_redeliver_makes_a_new_attempt(
    pipeline: Pipeline, client: Client, admin_client: Client
) -> None:
    pipeline.start_worker()
    request_id = _decide(pipeline, client, pipeline.receiver.url())
    pipeline.receiver.wait_for(request_id)
    wait_until(
        lambda: CallbackDelivery.objects.get(request_id=request_id).status == "delivered",
        timeout=10,
        what="the first delivery",
    )

    response = admin_client.post(
        "/admin/callbacks/callbackdelivery/", {"action": "redeliver", "_selected_action": [request_id]}
    )

    assert response.status_code == 302
    _, again = pipeline.receiver.wait_for(request_id, count=2)
    assert again.headers["x-charge-attempt"] == "2"
    wait_until(lambda: len(_attempts(request_id)) == 2, timeout=10, what="the second attempt row")


def test_a_worker_killed_mid_delivery_does_not_lose_the_callback(pipeline: Pipeline, client: Client) -> None:
    # The claim on a delivery lapses after 6 s here (60 s by default), then beat's sweep retries it.
    pipeline.env["CHARGE_CALLBACK_CLAIM_LEASE_S"] = "6"

    def hang_first(got: Received) -> Reply:
        return Reply(200, hang_s=30) if len(pipeline.receiver.received) == 1 else Reply(200)

    pipeline.receiver.reply = hang_first
    pipeline.start_worker(queues="authorize")
    doomed = pipeline.start_worker(queues="callbacks", pool="threads", concurrency=4)
    request_id = _decide(pipeline, client, pipeline.receiver.url())
    pipeline.receiver.wait_for(request_id)

    doomed.kill()
    pipeline.start_worker(queues="callbacks", pool="threads", concurrency=4)
    pipeline.start_beat()

    _, retried = pipeline.receiver.wait_for(request_id, count=2, timeout=40)
    assert retried.headers["x-charge-request-id"] == request_id
    wait_until(
        lambda: CallbackDelivery.objects.get(request_id=request_id).status == "delivered",
        timeout=10,
        what="the delivery to be recorded",
    )
