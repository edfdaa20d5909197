"""One of a thing per process: a client or a thread created on first use, never shared across a fork.

The api's server forks its workers (granian imports the app in each; a preloading server would
import it in the master first), and a Celery prefork pool forks its children: a socket or a thread
inherited from the parent must not be used by the child, so the holder remembers the pid it built
its value in and builds a new one after a fork.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """A value built by `make` on first use in each process (and again when `key()` changes)."""

    def __init__(self, make: Callable[[], T], *, key: Callable[[], object] = lambda: None) -> None:
        self._make = make
        self._key = key
        self._lock = threading.Lock()
        self._value: T | None = None
        self._made_for: tuple[int, object] | None = None

    def get(self) -> T:
        wanted = (os.getpid(), self._key())
        value = self._value
        if value is not None and self._made_for == wanted:
            return value
        with self._lock:
            if self._value is None or self._made_for != wanted:
                self._value, self._made_for = self._make(), wanted
            return self._value

    def take(self) -> T | None:
        """Forget this process's value and hand it back (to close it), or None if there is none here."""
        with self._lock:
            value, made_for = self._value, self._made_for
            self._value, self._made_for = None, None
        if value is None or made_for is None or made_for[0] != os.getpid():
            return None
        return value
