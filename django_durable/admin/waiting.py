"""What an execution waits for now, in words an operator reads at a glance.

The last workflow task records what the workflow awaits (`WorkflowExecution.waiting`); the
console adds what changed since without the workflow: an activity's current attempt, a
worker that is missing during a rolling deploy, inputs that made a task due.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ..constants import ActivityStatus, ExecutionStatus
from ..models import ActivityTask, WorkflowExecution

# (execution id, command number) -> (attempt, status) of an activity not delivered yet.
Attempts = dict[tuple[object, int], tuple[int, str]]


def open_attempts(executions: Iterable[WorkflowExecution]) -> Attempts:
    """The attempts of the activities the executions still wait for: one query."""
    ids = [e.pk for e in executions if e.status == ExecutionStatus.RUNNING and e.waiting]
    if not ids:
        return {}
    rows = ActivityTask.objects.filter(execution_id__in=ids, delivered=False).values_list(
        "execution_id", "command_seq", "attempt", "status"
    )
    return {(execution, seq): (attempt, status) for execution, seq, attempt, status in rows}


def _when(value: str | None) -> str:
    moment = parse_datetime(value) if value else None
    if moment is None:
        return "?"
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def _activity(execution: WorkflowExecution, entry: dict, attempts: Attempts) -> str:
    text = f"activity {entry.get('name')}"
    attempt, status = attempts.get((execution.pk, entry.get("seq")), (0, ActivityStatus.QUEUED))
    if status == ActivityStatus.RUNNING:
        return f"{text} attempt {attempt}"
    if status == ActivityStatus.QUEUED and attempt:
        return f"{text} retry after attempt {attempt}"
    return f"{text} (queued)" if status == ActivityStatus.QUEUED else f"{text} ({status})"


def _entry(execution: WorkflowExecution, entry: dict, attempts: Attempts) -> str:
    kind = entry.get("kind")
    if kind == "activity":
        return _activity(execution, entry, attempts)
    if kind == "signal":
        return f"signal {entry.get('name')}"
    if kind == "timer":
        return f"timer until {_when(entry.get('until'))}"
    if kind == "child":
        return f"child {entry.get('name')}"
    return str(kind)


def describe_waiting(
    execution: WorkflowExecution, attempts: Attempts, now: datetime | None = None
) -> str:
    """One line: what keeps `execution` from going on, or "" once it has ended."""
    now = now or timezone.now()
    if execution.status in ExecutionStatus.TERMINAL:
        return ""
    if execution.status == ExecutionStatus.BLOCKED:
        return "compatible code (parked: retry or deploy a fix)"
    if getattr(execution, "unknown_workflow", False):
        return f"a worker that knows workflow {execution.workflow_name}"
    if name := getattr(execution, "unknown_activity", None):
        return f"a worker that knows activity {name}"
    if execution.lease_until is not None and execution.lease_until > now:
        return f"its workflow task, running on {execution.lease_owner}"
    due = execution.wake_at is not None and execution.wake_at <= now
    if execution.waiting is None:
        return "its first workflow task" if execution.epoch == 0 else "its next workflow task"
    parts = [_entry(execution, entry, attempts) for entry in execution.waiting]
    if due:
        parts.insert(0, "its next workflow task (due)")
    return ", ".join(parts) or "its next workflow task"
