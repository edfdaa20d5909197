"""A small per-process cache whose entries expire: for reads a hot path repeats many times a second.

Entries are dropped once `ttl_s` has passed since they were stored; a full cache is emptied rather
than ordered (it only bounds memory against many distinct keys). Safe to share between threads:
two threads that miss together both read the database and the later one's value stays.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, *, ttl_s: Callable[[], float], max_entries: int = 10_000) -> None:
        # A callable so the setting is read when used (tests change it), not when the module loads.
        self._ttl_s = ttl_s
        self._max = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        found = self._entries.get(key)
        if found is None or time.monotonic() - found[0] >= self._ttl_s():
            return None
        return found[1]

    def put(self, key: K, value: V) -> None:
        if self._ttl_s() <= 0:
            return
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), value)

    def pop(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
