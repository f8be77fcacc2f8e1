"""Reads for the operator's console (the admin) whose cost must not grow with the tables."""

from __future__ import annotations

from django.db import connections

from ..constants import ExecutionStatus
from ..models import WorkflowExecution
from .db import alias


def count_by_status(cap: int) -> dict[str, int]:
    """How many executions have each status, counting at most `cap + 1` of each.

    A count over millions of ended executions would read them all; each count here stops
    after `cap + 1` index entries, so the answer costs the same at any size, and a count
    above `cap` means "more than `cap`". One statement for every status.
    """
    connection = connections[alias()]
    quote = connection.ops.quote_name
    table = quote(WorkflowExecution._meta.db_table)
    status = quote(WorkflowExecution._meta.get_field("status").column)
    statuses = [value for value, _ in ExecutionStatus.CHOICES]
    parts = [
        f"SELECT %s, (SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {status} = %s "
        f"LIMIT %s) AS capped_{index})"
        for index in range(len(statuses))
    ]
    params: list[object] = []
    for value in statuses:
        params += [value, value, cap + 1]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        return {value: count for value, count in cursor.fetchall()}
