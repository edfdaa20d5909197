"""Django's PostgreSQL backend, with a health check that asks the server only when it said something.

With CONN_HEALTH_CHECKS, Django checks a kept connection once per request (and per Celery task)
before its first query by sending `SELECT 1`: a round trip on every synchronous decision, a third
of the api's statements there. An idle connection hears nothing from the server unless the server
is ending it (a restart or pg_terminate_backend sends a FATAL notice and closes the socket), so
here a connection idle outside a transaction, not marked broken and with nothing to read is
usable at once; anything else (bytes waiting, a transaction open, a connection psycopg knows is
broken) gets Django's own SELECT 1 check. A server that vanished without closing the socket fails
the request's first query instead, and Django closes that connection at the request's end, as it
does when SELECT 1 itself fails.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        pgconn = connection.pgconn
        if pgconn.status == pq.ConnStatus.OK and pgconn.transaction_status == pq.TransactionStatus.IDLE:
            readable, _, _ = select.select([pgconn.socket], [], [], 0)
            if not readable:
                return True
        return bool(super().is_usable())
