"""Statements the ORM cannot write, built from model instances the way Django would save them.

The hot paths use them where the ORM has no form for the statement (INSERT … ON CONFLICT …
RETURNING, a WITH clause holding an INSERT) or where its per-statement cost showed in the profiles
(bulk_create builds a compiler, batches, and on PostgreSQL asks RETURNING of the primary key).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection


def placeholders(count: int) -> str:
    """`count` parameter holes for an IN (…) list."""
    return ", ".join(["%s"] * count)


def insert_sql(rows: Sequence[Any]) -> tuple[str, list[Any]]:
    """One INSERT of model instances of one model, with the values Django would save (defaults,
    auto_now); an auto-incremented primary key is left to the database."""
    meta = rows[0]._meta
    fields = [
        f for f in meta.concrete_fields if not (f.primary_key and f.get_internal_type().endswith("AutoField"))
    ]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    holes = "(" + placeholders(len(fields)) + ")"
    params = [f.get_db_prep_save(f.pre_save(row, add=True), connection) for row in rows for f in fields]
    sql = f"INSERT INTO {meta.db_table} ({columns}) VALUES {', '.join([holes] * len(rows))}"  # noqa: S608
    return sql, params
