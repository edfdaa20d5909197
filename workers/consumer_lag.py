"""The bridge's consumer lag per partition, from librdkafka's statistics, for the metrics."""

from __future__ import annotations

import json

from apps.monitoring.exposition import multiprocess_dir
from apps.monitoring.metrics import BRIDGE_CONSUMER_LAG

# How often librdkafka hands the bridge its statistics (statistics.interval.ms).
LAG_INTERVAL_S = 1.0


class ConsumerLag:
    """Sets BRIDGE_CONSUMER_LAG for each assigned partition of `topic`; forgets partitions let go."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._partitions: set[str] = set()

    def observe(self, stats: str, *, assigned: set[int]) -> None:
        """librdkafka's statistics (every LAG_INTERVAL_S): each assigned partition's consumer lag.

        The high watermark minus where this bridge is: the offset it has consumed up to, else the
        committed one, else (a new group, which starts from the earliest) the low watermark.
        """
        try:
            partitions = json.loads(stats)["topics"][self.topic]["partitions"]
        except (ValueError, KeyError, TypeError):
            return
        seen: set[str] = set()
        for number, figures in partitions.items():
            if number == "-1" or int(number) not in assigned:
                continue
            high = figures.get("hi_offset", -1)
            at = next(
                (
                    o
                    for o in (figures.get(k, -1) for k in ("app_offset", "committed_offset", "lo_offset"))
                    if o >= 0
                ),
                -1,
            )
            if high < 0 or at < 0:
                continue  # nothing fetched from it yet
            BRIDGE_CONSUMER_LAG.labels(partition=number).set(max(high - at, 0))
            seen.add(number)
        if not multiprocess_dir():  # (multiprocess mode cannot remove series)
            for number in self._partitions - seen:
                BRIDGE_CONSUMER_LAG.remove(number)
        self._partitions = seen
