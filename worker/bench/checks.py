"""Every result is checked: a wrong or unfinished workflow fails the run, loudly."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.management.base import CommandError

from django_durable.constants import ActivityStatus, ExecutionStatus
from django_durable.models import ActivityTask

SHOWN = 20  # problems listed in the error


def fail(label: str, problems: list[str], total: int) -> None:
    """A CommandError: one summary line, then the first problems, one per line."""
    listed = "\n  ".join(problems[:SHOWN])
    more = f"\n  ... and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    raise CommandError(
        f"{label}: {len(problems)} problem(s) among {total} workflow(s).\n  {listed}{more}"
    )


def check_results(label: str, rows: list[dict], expected: dict[Any, Any]) -> None:
    """Each execution in `expected` (id -> result) completed with that result."""
    problems = []
    seen = set()
    for row in rows:
        seen.add(row["pk"])
        want = expected.get(row["pk"], "<not started by this run>")
        if row["status"] != ExecutionStatus.COMPLETED or row["result"] != want:
            error = (row.get("error") or {}).get("message", "")
            problems.append(
                f"{row['pk']}: {row['status']}, result {row['result']!r}, expected {want!r}"
                + (f" ({error})" if error else "")
            )
    missing = [pk for pk in expected if pk not in seen]
    problems += [f"{pk}: not found" for pk in missing[:SHOWN]]
    if problems:
        fail(label, problems, len(expected))


def check_activities(label: str, executions: Any, ids: list, per_workflow: int) -> int:
    """Each execution in `ids` ran `per_workflow` activities, each completed at its first
    attempt; returns how many activities ran. `executions`: a queryset holding them."""
    rows = list(
        ActivityTask.objects.filter(execution__in=executions).values_list(
            "execution_id", "status", "attempt"
        )
    )
    per_execution = Counter(row[0] for row in rows)
    problems = [
        f"{pk}: {per_execution.get(pk, 0)} activities, expected {per_workflow}"
        for pk in ids
        if per_execution.get(pk, 0) != per_workflow
    ]
    problems += [
        f"{pk}: an activity {status} at attempt {attempt}"
        for pk, status, attempt in rows
        if status != ActivityStatus.COMPLETED or attempt != 1
    ]
    if problems:
        fail(label, problems, len(ids))
    return len(rows)
