"""The ladder's mean batch sizes: the workers' and the bridge's batch-size histograms, two scrapes apart."""

from __future__ import annotations

from benchmarks.batches import batch_means, batch_totals

AUTHORIZE_WORKER = """\
# HELP charge_task_batch_size Requests or deliveries one task carried.
# TYPE charge_task_batch_size histogram
charge_task_batch_size_bucket{le="1.0",task="authorize"} 3.0
charge_task_batch_size_bucket{le="+Inf",task="authorize"} 10.0
charge_task_batch_size_sum{task="authorize"} 120.0
charge_task_batch_size_count{task="authorize"} 10.0
"""
CALLBACKS_WORKER = """\
# HELP charge_task_batch_size Requests or deliveries one task carried.
# TYPE charge_task_batch_size histogram
charge_task_batch_size_bucket{le="+Inf",task="deliver"} 4.0
charge_task_batch_size_sum{task="deliver"} 40.0
charge_task_batch_size_count{task="deliver"} 4.0
"""
BRIDGE = """\
# HELP charge_bridge_batch_size Messages per batch the bridge stored and published.
# TYPE charge_bridge_batch_size histogram
charge_bridge_batch_size_bucket{le="+Inf"} 2.0
charge_bridge_batch_size_sum 120.0
charge_bridge_batch_size_count 2.0
# HELP charge_decision_batch_size Requests one set-wise decision carried.
# TYPE charge_decision_batch_size histogram
charge_decision_batch_size_bucket{by="bridge",le="+Inf"} 3.0
charge_decision_batch_size_sum{by="bridge"} 90.0
charge_decision_batch_size_count{by="bridge"} 3.0
# HELP charge_callback_batch_size Deliveries one batch of attempts carried.
# TYPE charge_callback_batch_size histogram
charge_callback_batch_size_bucket{by="bridge",le="+Inf"} 2.0
charge_callback_batch_size_sum{by="bridge"} 3.0
charge_callback_batch_size_count{by="bridge"} 2.0
"""


def test_each_kind_is_read_from_whichever_process_serves_it() -> None:
    totals = batch_totals([AUTHORIZE_WORKER, CALLBACKS_WORKER, BRIDGE])
    assert totals == {
        "decide": (90.0, 3.0),
        "authorize": (120.0, 10.0),
        "deliver": (40.0, 4.0),
        "deliver_bridge": (3.0, 2.0),
        "bridge_poll": (120.0, 2.0),
    }


def test_the_mean_is_what_happened_between_two_scrapes() -> None:
    before = {"authorize": (20.0, 5.0), "deliver": (0.0, 0.0), "bridge_poll": (20.0, 1.0)}
    after = batch_totals([AUTHORIZE_WORKER, CALLBACKS_WORKER, BRIDGE])
    means = batch_means(before, after)
    assert means["authorize"] == {"items": 100, "batches": 5, "mean": 20.0}
    assert means["deliver"] == {"items": 40, "batches": 4, "mean": 10.0}
    assert means["bridge_poll"] == {"items": 100, "batches": 1, "mean": 100.0}


def test_no_batch_in_between_has_no_mean() -> None:
    totals = batch_totals([AUTHORIZE_WORKER])
    assert batch_means(totals, totals)["authorize"] == {"items": 0, "batches": 0, "mean": None}
    # A process that served nothing yet: zeros, not an error.
    assert batch_totals([])["deliver"] == (0.0, 0.0)
