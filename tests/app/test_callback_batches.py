"""callbacks.deliver's body on batches: one claim, concurrent signed POSTs, attempts recorded together.

Real PostgreSQL and real HTTP receivers on loopback; only the broker is replaced (the `sent`
fixture records the deliver tasks queued for prompt retries).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.callbacks import services
from apps.callbacks.models import CallbackAttempt, CallbackDelivery
from apps.callbacks.signing import signature_verify
from apps.charging.services import decided_request_of
from apps.clients.models import ApiClient
from apps.clients.services import callback_secret_rotate
from tests.app.callers import LogRow, SentTasks
from tests.receiver import CallbackReceiver, Reply, now_unix


@pytest.fixture
def receiver() -> Any:
    started = CallbackReceiver().start()
    yield started
    started.stop()


@pytest.fixture
def pending_delivery(log_row: LogRow) -> Any:
    """A decided row with an open delivery to `url`, due now."""

    def make(url: str, *, client: ApiClient | None = None) -> str:
        request = log_row(client=client, callback_url=url)
        request.save()
        CallbackDelivery.objects.create(
            request=request,
            client=client,
            url=url,
            body=services.callback_body(decided=decided_request_of(request)),
            next_attempt_at=timezone.now() - timedelta(seconds=1),
        )
        return str(request.request_id)

    return make


def test_a_batch_is_posted_signed_and_recorded_once_each(
    receiver: CallbackReceiver, pending_delivery: Any, sent: SentTasks
) -> None:
    client = ApiClient.objects.create(name="batch-client", callback_secret="batch-secret")
    ids = [pending_delivery(receiver.url(f"/cb/{n}"), client=client) for n in range(20)]

    outcome = services.deliveries_attempt(request_ids=ids)

    assert outcome == {"delivered": 20}
    assert sorted(r.headers["x-charge-request-id"] for r in receiver.received) == sorted(ids)
    for got in receiver.received:
        assert got.headers["x-charge-attempt"] == "1"
        assert signature_verify(
            header=got.headers["x-charge-signature"], secret="batch-secret", body=got.body, now=now_unix()
        )
    assert set(CallbackDelivery.objects.filter(request_id__in=ids).values_list("status", flat=True)) == {
        "delivered"
    }
    assert CallbackAttempt.objects.filter(delivery_id__in=ids, http_status=200).count() == 20
    # Run again (a redelivered task): nothing is due, nothing is sent twice.
    assert services.deliveries_attempt(request_ids=ids) == {}
    assert len(receiver.received) == 20


def test_each_delivery_of_a_batch_gets_its_own_outcome(pending_delivery: Any, sent: SentTasks) -> None:
    gone = CallbackReceiver(lambda _: Reply(410)).start()
    failing = CallbackReceiver(lambda _: Reply(500)).start()
    fine = CallbackReceiver().start()
    try:
        ids = {
            "gone": pending_delivery(gone.url()),
            "failing": pending_delivery(failing.url()),
            "fine": pending_delivery(fine.url()),
        }
        services.deliveries_attempt(request_ids=list(ids.values()))
    finally:
        for receiver in (gone, failing, fine):
            receiver.stop()

    rows = {str(row.request_id): row for row in CallbackDelivery.objects.filter(request_id__in=ids.values())}
    by_name = {name: rows[request_id] for name, request_id in ids.items()}
    assert (by_name["gone"].status, by_name["gone"].last_http_status) == ("stopped", 410)
    assert (by_name["fine"].status, by_name["fine"].delivered_at is not None) == ("delivered", True)
    retrying = by_name["failing"]
    assert (retrying.status, retrying.attempts, retrying.last_error) == ("retrying", 1, "HTTP 500")
    assert retrying.next_attempt_at is not None
    # +5 s ±20 %: within the countdown window, so its next attempt is queued at once.
    assert sent.request_ids == [ids["failing"]]
    assert sent.countdowns[0] is not None
    assert 4 <= sent.countdowns[0] <= 7


def test_an_address_our_own_guard_refuses_fails_at_once(
    pending_delivery: Any, sent: SentTasks, settings: Any
) -> None:
    """Retrying cannot help when our rules refuse the address: `failed` with the reason, no schedule."""
    settings.CHARGE_CALLBACK_ALLOW_PRIVATE = False
    request_id = pending_delivery("http://127.0.0.1:9/callback")

    assert services.deliveries_attempt(request_ids=[request_id]) == {"failed": 1}

    delivery = CallbackDelivery.objects.get(request_id=request_id)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 1, None)
    assert "loopback" in delivery.last_error
    attempt = CallbackAttempt.objects.get(delivery_id=request_id)
    assert attempt.error.startswith("refused:")
    assert sent.request_ids == []


def test_a_host_name_that_can_never_resolve_fails_instead_of_crashing_every_lease(
    pending_delivery: Any, sent: SentTasks
) -> None:
    """A 64-character DNS label made the old deliver task raise UnicodeError at every try, forever."""
    request_id = pending_delivery(f"http://{'a' * 64}.example/callback")

    assert services.deliveries_attempt(request_ids=[request_id]) == {"failed": 1}

    delivery = CallbackDelivery.objects.get(request_id=request_id)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "invalid host name" in delivery.last_error


def test_anything_unexpected_while_sending_is_a_failed_attempt_on_the_schedule(
    pending_delivery: Any, receiver: CallbackReceiver, sent: SentTasks, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = pending_delivery(receiver.url())

    async def broken_exchange(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr("apps.callbacks.http._exchange", broken_exchange)
    assert services.deliveries_attempt(request_ids=[request_id]) == {"retrying": 1}

    delivery = CallbackDelivery.objects.get(request_id=request_id)
    assert (delivery.status, delivery.attempts) == ("retrying", 1)
    assert "something nobody expected" in delivery.last_error
    assert delivery.next_attempt_at is not None


def test_the_old_single_id_arguments_still_work(
    pending_delivery: Any, receiver: CallbackReceiver, sent: SentTasks
) -> None:
    from workers.tasks import deliver

    request_id = pending_delivery(receiver.url())

    assert deliver(request_id=request_id) == 1
    assert CallbackDelivery.objects.get(request_id=request_id).status == "delivered"


def test_a_clients_secrets_are_read_once_per_cache_period_and_a_rotation_here_counts_at_once(
    receiver: CallbackReceiver, pending_delivery: Any, sent: SentTasks, settings: Any
) -> None:
    settings.CHARGE_CLIENT_CACHE_S = 60
    client = ApiClient.objects.create(name="cached-client", callback_secret="first-secret")
    first = pending_delivery(receiver.url("/cb/1"), client=client)
    services.deliveries_attempt(request_ids=[first])

    # Changed behind this process's back (another process, a raw UPDATE): the cached client signs.
    ApiClient.objects.filter(pk=client.pk).update(callback_secret="changed-elsewhere")
    second = pending_delivery(receiver.url("/cb/2"), client=client)
    with CaptureQueriesContext(connection) as queries:
        services.deliveries_attempt(request_ids=[second])
    assert not [q for q in queries if ApiClient._meta.db_table in q["sql"]]

    # Rotated through the service in this process: the next batch signs with the new secret.
    new_secret = callback_secret_rotate(client=ApiClient.objects.get(pk=client.pk), window=timedelta(hours=1))
    third = pending_delivery(receiver.url("/cb/3"), client=client)
    services.deliveries_attempt(request_ids=[third])

    headers = {r.headers["x-charge-request-id"]: r.headers["x-charge-signature"] for r in receiver.received}
    verifies = {
        rid: [s for s in ("first-secret", "changed-elsewhere", new_secret)
              if signature_verify(header=headers[rid], secret=s, body=b, now=now_unix())]
        for rid, b in ((r.headers["x-charge-request-id"], r.body) for r in receiver.received)
    }  # fmt: skip
    assert verifies == {
        first: ["first-secret"],
        second: ["first-secret"],
        third: ["changed-elsewhere", new_secret],
    }
