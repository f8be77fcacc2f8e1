"""Set-based writes: one UPDATE gives many rows each their own values.

Recording a batch row by row costs a statement (and its round trip) per row. Here the
rows to change are locked first, in primary-key order (`locked_rows`), the caller decides
from what it read which of them it may change, and `update_each` writes them all in one
statement, every column a `CASE` over the primary keys.

Both are written as SQL through Django's connection, from the models' `_meta` (tables,
columns, and each field's own value preparation), because building them with the ORM
costs more CPU than the database spends running them: a `Case` of a hundred `When`s
resolves a hundred lookups. The SQL is portable (PostgreSQL, SQLite).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from django.db import connections, models

from .db import alias


def locked_rows(model: type[models.Model], pks: Collection[Any], *fields: str) -> dict:
    """The rows with these primary keys (only `fields` loaded), locked in primary-key order
    (`SELECT ... FOR UPDATE` where the database has row locks)."""
    if not pks:
        return {}
    connection = connections[alias()]
    quote = connection.ops.quote_name
    meta = model._meta
    columns = [meta.pk.column, *(meta.get_field(name).column for name in fields)]
    pk_values = [meta.pk.get_db_prep_value(pk, connection) for pk in pks]
    sql = (
        f"SELECT {', '.join(map(quote, columns))} FROM {quote(meta.db_table)} "
        f"WHERE {quote(meta.pk.column)} IN ({', '.join(['%s'] * len(pk_values))}) "
        f"ORDER BY {quote(meta.pk.column)}"
    )
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return {row.pk: row for row in model.objects.using(alias()).raw(sql, pk_values)}


def update_each(
    model: type[models.Model],
    changes: Mapping[Any, Mapping[str, Any]],
    common: Mapping[str, Any] | None = None,
) -> int:
    """Give each row `pk` its `changes[pk]` (field name -> value), and all of them the
    values of `common`, in one UPDATE; returns how many rows it changed.

    A column every row gets the same value is set plainly; the others are a CASE over the
    primary keys. Values are prepared by their model fields (JSON, dates, UUIDs), as the
    ORM would. The caller holds the rows' locks (see `locked_rows`).
    """
    if not changes:
        return 0
    connection = connections[alias()]
    quote = connection.ops.quote_name
    meta = model._meta
    pk_column = quote(meta.pk.column)

    def key(pk: Any) -> Any:
        return meta.pk.get_db_prep_value(pk, connection)

    columns: dict[str, dict[Any, Any]] = {}
    for pk, fields in changes.items():
        for name, value in fields.items():
            columns.setdefault(name, {})[pk] = value
    assignments: list[str] = []
    params: list[Any] = []
    for name, value in (common or {}).items():
        field = meta.get_field(name)
        assignments.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    for name, values in columns.items():
        field = meta.get_field(name)
        column = quote(field.column)
        if len(values) == len(changes) and len({_hashable(v) for v in values.values()}) == 1:
            assignments.append(f"{column} = %s")
            params.append(field.get_db_prep_save(next(iter(values.values())), connection))
            continue
        assignments.append(
            f"{column} = CASE {pk_column} {' '.join(['WHEN %s THEN %s'] * len(values))} "
            f"ELSE {column} END"
        )
        for pk, value in values.items():
            params += [key(pk), field.get_db_prep_save(value, connection)]
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {', '.join(assignments)} "
        f"WHERE {pk_column} IN ({', '.join(['%s'] * len(changes))})"
    )
    params += [key(pk) for pk in changes]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _hashable(value: Any) -> Any:
    """A hashable stand-in to compare values (JSON ones are dicts and lists)."""
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return (type(value), value)


def insert_rows(
    model: type[models.Model],
    rows: list[dict[str, Any]],
    *,
    returning: bool = False,
) -> list[Any]:
    """Insert `rows` (each: field name -> value, the same names in every row) in one
    statement; with `returning`, the new primary keys in the rows' order.

    What `bulk_create` does, without compiling a query per call: values are prepared by
    their fields, as the ORM would (fields a row leaves out must have a default in the
    database's sense: null, or a value the caller adds).
    """
    if not rows:
        return []
    connection = connections[alias()]
    quote = connection.ops.quote_name
    meta = model._meta
    fields = [meta.get_field(name) for name in rows[0]]
    placeholders = f"({', '.join(['%s'] * len(fields))})"
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES {', '.join([placeholders] * len(rows))}"
    )
    if returning:
        sql += f" RETURNING {quote(meta.pk.column)}"
    params = [
        None if row[field.name] is None else field.get_db_prep_save(row[field.name], connection)
        for row in rows
        for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [pk for (pk,) in cursor.fetchall()] if returning else []
