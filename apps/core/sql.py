"""Statements the ORM cannot write, built from model instances the way Django would save them.

The hot paths use them where the ORM has no form for the statement (INSERT … ON CONFLICT …
RETURNING, a WITH clause holding an INSERT) or where its per-statement cost showed in the profiles
(bulk_create builds a compiler, batches, and on PostgreSQL asks RETURNING of the primary key).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Field, Model


def placeholders(count: int) -> str:
    """`count` parameter holes for an IN (…) list."""
    return ", ".join(["%s"] * count)


_InsertShape = tuple[str, tuple["Field[Any, Any]", ...], str]
_insert_shapes: dict[tuple[type[Model], str], _InsertShape] = {}


def _insert_shape(model: type[Model]) -> _InsertShape:
    """A model's INSERT head, the fields it saves and one row's holes, built once per model and
    database vendor (a walk of every field, each column quoted)."""
    key = (model, connection.vendor)
    shape = _insert_shapes.get(key)
    if shape is None:
        shape = _insert_shapes[key] = _insert_shape_build(model)
    return shape


def _insert_shape_build(model: type[Model]) -> _InsertShape:
    meta = model._meta
    fields = tuple(
        f for f in meta.concrete_fields if not (f.primary_key and f.get_internal_type().endswith("AutoField"))
    )
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    return f"INSERT INTO {meta.db_table} ({columns}) VALUES ", fields, "(" + placeholders(len(fields)) + ")"  # noqa: S608


def insert_sql(rows: Sequence[Any]) -> tuple[str, list[Any]]:
    """One INSERT of model instances of one model, with the values Django would save (defaults,
    auto_now); an auto-incremented primary key is left to the database."""
    head, fields, holes = _insert_shape(type(rows[0]))
    params = [f.get_db_prep_save(f.pre_save(row, add=True), connection) for row in rows for f in fields]
    return head + ", ".join([holes] * len(rows)), params
