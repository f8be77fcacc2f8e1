"""INSERT statements built from a model's `_meta`, to be composed into one statement.

PostgreSQL runs data-modifying CTEs, so several INSERTs and a NOTIFY can be one statement:
one round trip, and in autocommit one transaction. Table and column names and types come
from `_meta`; values are prepared as Django prepares an INSERT's (defaults, `auto_now`
stamps, JSON adapters). Two shapes:

- `values_sql`: one row, `VALUES (%s, ...)`: the cheapest for the server to plan.
- `json_rows_sql`: many rows from one JSON text parameter (`[[v0, v1, ...], ...]`),
  unpacked by `jsonb_array_elements`. One text parameter is quoted by psycopg in C; array
  parameters of 10,000 elements would be quoted element by element in Python.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper

FromRow = tuple[tuple[str, int], ...]  # (attname, index of its element in each row), ...
ROWS = "json_rows"  # the CTE `rows_cte()` defines: one row `r` (a jsonb array) per element


def insert_fields(model: type[models.Model]) -> list[models.Field]:
    """The columns an INSERT writes: all but a primary key the database generates."""
    meta = model._meta
    return [field for field in meta.concrete_fields if field is not meta.auto_field]


def _head(model: type[models.Model], db: str) -> str:
    quote = connections[db].ops.quote_name
    columns = ", ".join(quote(field.column) for field in insert_fields(model))
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns})"


@functools.lru_cache(maxsize=16)
def values_sql(model: type[models.Model], db: str) -> str:
    """`INSERT INTO <table> (<every column>) VALUES (%s, ...)`; see `values_params`."""
    return f"{_head(model, db)} VALUES ({', '.join(['%s'] * len(insert_fields(model)))})"


def values_params(instance: models.Model, db: str) -> list[Any]:
    """The values of `values_sql` for an unsaved `instance`."""
    return _prepared(instance, insert_fields(type(instance)), connections[db])


def _prepared(
    instance: models.Model, fields: list[models.Field], connection: BaseDatabaseWrapper
) -> list[Any]:
    """`instance`'s values of `fields` as Django prepares an INSERT's; None is NULL for
    every field, so it skips the preparation (a third of a start's columns are None)."""
    values = []
    for field in fields:
        value = field.pre_save(instance, add=True)
        values.append(None if value is None else field.get_db_prep_save(value, connection))
    return values


def rows_cte() -> str:
    """`json_rows AS (...)`, its one `%s` the rows' JSON text."""
    return f"{ROWS} AS (SELECT value AS r FROM jsonb_array_elements(%s::jsonb))"


@functools.lru_cache(maxsize=16)
def json_rows_sql(model: type[models.Model], from_row: FromRow, db: str) -> str:
    """`INSERT INTO <table> (<every column>) SELECT ... FROM json_rows`.

    A field named (by attname) in `from_row` takes its element of each row: a JSON field
    the element itself, any other its text cast to the column's type. Every other column
    takes a `%s`, the same for every row (see `json_rows_params`).
    """
    connection = connections[db]
    elements = dict(from_row)
    selected = []
    for field in insert_fields(model):
        column_type = field.cast_db_type(connection)
        if field.attname not in elements:
            selected.append(f"%s::{column_type}")
        elif isinstance(field, models.JSONField):
            selected.append(f"r -> {elements[field.attname]:d}")
        else:
            selected.append(f"(r ->> {elements[field.attname]:d})::{column_type}")
    return f"{_head(model, db)} SELECT {', '.join(selected)} FROM {ROWS}"


def json_rows_params(template: models.Model, from_row: FromRow, db: str) -> list[Any]:
    """The values of `json_rows_sql` that every row shares, from `template` (unsaved)."""
    elements = dict(from_row)
    fields = [field for field in insert_fields(type(template)) if field.attname not in elements]
    return _prepared(template, fields, connections[db])
