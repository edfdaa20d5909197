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


def _column(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    assert isinstance(field, Field)  # noqa: S101 - a column, not a relation's reverse side
    return field


def _field_hole(field: Field[Any, Any], *, array: bool) -> str:
    # PostgreSQL wants the type where it cannot infer one (inside CASE, unnest, = ANY).
    return f"%s::{field.db_type(connection)}{'[]' if array else ''}"


def typed_hole(model: type[Model], name: str, *, array: bool = False) -> str:
    """The placeholder of a value (or, `array`, of an array of values; PostgreSQL only) of one of
    `model`'s fields, typed on PostgreSQL; SQLite stores what it is given."""
    return _field_hole(_column(model, name), array=array) if connection.vendor == "postgresql" else "%s"


def one_of(model: type[Model], name: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """`model`'s field `name` is one of `values`: `IN (%s, …)` with a parameter per value, or on
    PostgreSQL `= ANY(%s::type[])` with one array, whose text is the same for every count (see
    insert_sql)."""
    field = _column(model, name)
    if connection.vendor == "postgresql":
        return f"{field.column} = ANY({_field_hole(field, array=True)})", [list(values)]
    return f"{field.column} IN ({placeholders(len(values))})", list(values)


_InsertShape = tuple[str, tuple["Field[Any, Any]", ...], str, str]
_insert_shapes: dict[tuple[type[Model], tuple[str, ...], str], _InsertShape] = {}
_saved_names: dict[type[Model], tuple[str, ...]] = {}


def _insert_shape(model: type[Model], names: tuple[str, ...]) -> _InsertShape:
    """An INSERT head of these fields of `model`, the fields, one row's holes and, for PostgreSQL,
    a hole per column for an array of its values: built once per model, fields and vendor."""
    key = (model, names, connection.vendor)
    shape = _insert_shapes.get(key)
    if shape is None:
        fields = tuple(_column(model, name) for name in names)
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        arrays = (
            ", ".join(_field_hole(f, array=True) for f in fields) if connection.vendor == "postgresql" else ""
        )
        head = f"INSERT INTO {model._meta.db_table} ({columns})"
        shape = _insert_shapes[key] = (head, fields, "(" + placeholders(len(fields)) + ")", arrays)
    return shape


def _fields_saved(model: type[Model]) -> tuple[str, ...]:
    """Every concrete field Django would save, an auto-incremented primary key left out."""
    names = _saved_names.get(model)
    if names is None:
        names = _saved_names[model] = tuple(
            f.name
            for f in model._meta.concrete_fields
            if not (f.primary_key and f.get_internal_type().endswith("AutoField"))
        )
    return names


def _insert_statement(shape: _InsertShape, rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
    head, _, holes, arrays = shape
    if len(rows) > 1 and connection.vendor == "postgresql":
        columns = [list(column) for column in zip(*rows, strict=True)]
        return f"{head} SELECT * FROM unnest({arrays})", columns  # noqa: S608 - names from the model
    return f"{head} VALUES {', '.join([holes] * len(rows))}", [value for row in rows for value in row]


def insert_sql(rows: Sequence[Any]) -> tuple[str, list[Any]]:
    """One INSERT of model instances of one model, with the values Django would save (defaults,
    auto_now); an auto-incremented primary key is left to the database.

    On PostgreSQL, several rows go as one array per column (`SELECT * FROM unnest(...)`): the
    statement's text and its parameter count are the same for every batch size, so psycopg
    converts it once (it caches queries of at most 50 parameters; a VALUES list of a batch has one
    per value, and splitting it was a sixth of a callbacks worker's CPU, py-spy) and PostgreSQL
    parses a handful of parameters instead of hundreds.
    """
    model = type(rows[0])
    shape = _insert_shape(model, _fields_saved(model))
    fields = shape[1]
    values = [[f.get_db_prep_save(f.pre_save(row, add=True), connection) for f in fields] for row in rows]
    return _insert_statement(shape, values)


def insert_values_sql(
    model: type[Model], names: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> tuple[str, list[Any]]:
    """One INSERT of `rows`, each a value per field of `names` (the columns left out get NULL), in
    the form insert_sql writes, without a model instance per row.

    For a hot path whose values are of the types psycopg stores as Django would (str, int, UUID,
    aware datetime, None): on PostgreSQL they go as they are; elsewhere each field prepares its
    value (SQLite keeps UUIDs as hex and datetimes as naive UTC text). Building and preparing a
    ChargingRequest per OCPP Authorize was ~0.2 ms of the gateway's ~0.7 ms per batch of one.
    """
    shape = _insert_shape(model, names)
    if connection.vendor != "postgresql":
        fields = shape[1]
        rows = [[f.get_db_prep_save(v, connection) for f, v in zip(fields, row, strict=True)] for row in rows]
    return _insert_statement(shape, rows)
