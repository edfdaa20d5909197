"""How many requests each task and each bridge poll carried: the batch-size histograms, scraped.

Each worker serves `charge_task_batch_size{task="authorize"|"deliver"}` on its own metrics port
(CHARGE_WORKER_METRICS_PORT), the bridge `charge_bridge_batch_size` on CHARGE_BRIDGE_METRICS_PORT;
`charge_decision_batch_size` (requests per set-wise decision) comes from whichever decided: the
bridge inline (CHARGE_BRIDGE_DECIDES) or an authorize task; `charge_callback_batch_size{by="bridge"}`
counts the first attempts the bridge made itself (CHARGE_BRIDGE_CALLBACK_THREADS).
A histogram's _sum and _count only grow, so the difference of two scrapes is what happened between
them: requests (or deliveries) carried, tasks (or polls) run, and their mean.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# What the report calls each kind → (histogram name, labels a sample must carry).
BATCH_KINDS: dict[str, tuple[str, dict[str, str]]] = {
    "decide": ("charge_decision_batch_size", {}),
    "authorize": ("charge_task_batch_size", {"task": "authorize"}),
    "deliver": ("charge_task_batch_size", {"task": "deliver"}),
    "deliver_bridge": ("charge_callback_batch_size", {"by": "bridge"}),
    "bridge_poll": ("charge_bridge_batch_size", {}),
}

Totals = dict[str, tuple[float, float]]  # kind → (sum, count)


def batch_totals(texts: Iterable[str]) -> Totals:
    """The _sum and _count of every batch kind, added up over several scrapes (one per process)."""
    totals = dict.fromkeys(BATCH_KINDS, (0.0, 0.0))
    for text in texts:
        for family in text_string_to_metric_families(text):
            for kind, (name, labels) in BATCH_KINDS.items():
                if family.name != name:
                    continue
                for sample in family.samples:
                    if any(sample.labels.get(k) != v for k, v in labels.items()):
                        continue
                    total, count = totals[kind]
                    if sample.name == f"{name}_sum":
                        totals[kind] = (total + sample.value, count)
                    elif sample.name == f"{name}_count":
                        totals[kind] = (total, count + sample.value)
    return totals


def batch_means(before: Totals, after: Totals) -> dict[str, dict[str, Any]]:
    """Per kind: items carried and batches run between two readings, and the mean batch size."""
    out: dict[str, dict[str, Any]] = {}
    for kind in BATCH_KINDS:
        total0, count0 = before.get(kind, (0.0, 0.0))
        total1, count1 = after.get(kind, (0.0, 0.0))
        items, batches = total1 - total0, count1 - count0
        out[kind] = {
            "items": int(items),
            "batches": int(batches),
            "mean": round(items / batches, 2) if batches > 0 else None,
        }
    return out


def metrics_scrape(ports: Mapping[str, int], *, timeout: float = 5.0) -> tuple[Totals, dict[str, str]]:
    """Read /metrics of each named process; returns the totals and, per process, what went wrong."""
    texts: list[str] = []
    errors: dict[str, str] = {}
    for name, port in ports.items():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                errors[name] = f"HTTP {response.status}"
                continue
            texts.append(body.decode())
        except OSError as exc:
            errors[name] = repr(exc)
        finally:
            conn.close()
    return batch_totals(texts), errors
