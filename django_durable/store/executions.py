"""Executions and their history: start, claim a workflow task, record its outcome, park."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Case, DateTimeField, F, Q, Value, When
from django.db.models.functions import Coalesce, Least

from ..constants import ActivityStatus, EventKind, ExecutionStatus
from ..exceptions import WorkflowNotFound
from ..models import ActivityTask, HistoryEvent, PendingSignal, WorkflowExecution
from ..payloads import to_json_value
from ..runtime.events import Event
from .db import alias, lease_deadline, notify, now_or


class LeaseLost(Exception):
    """The workflow task's lease moved to another owner; its results were discarded."""


@dataclass(frozen=True)
class WorkflowClaim:
    """A workflow task this worker owns until `lease_until`, fenced by `epoch`."""

    execution_id: uuid.UUID
    workflow_name: str
    workflow_id: str | None
    parent_id: uuid.UUID | None
    owner: str
    epoch: int
    inbox_version: int


@dataclass
class Inbox:
    """Inputs that arrived for an execution and are not yet in its history."""

    activity_outcomes: list[tuple[int, Event]] = field(default_factory=list)
    signals: list[tuple[int, Event]] = field(default_factory=list)
    cancel_reason: str | None = None


def _at(moment: datetime | None) -> Value:
    return Value(moment, output_field=DateTimeField())


def _executions():
    return WorkflowExecution.objects.using(alias())


def get_execution(execution_id: uuid.UUID | str) -> WorkflowExecution:
    """The execution with that id; `WorkflowNotFound` if there is none."""
    try:
        return _executions().get(pk=execution_id)
    except (WorkflowExecution.DoesNotExist, ValidationError, ValueError):
        raise WorkflowNotFound(f"No workflow execution has the id {str(execution_id)!r}.") from None


def start_execution(
    workflow_name: str,
    inputs: dict[str, Any],
    *,
    workflow_id: str | None = None,
    parent_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> tuple[uuid.UUID, bool]:
    """Commit a new execution and its first history event; return (id, created).

    With a `workflow_id` that an execution already has, that execution's id is returned
    and nothing is written.
    """
    inputs = to_json_value(inputs, f"The input of workflow {workflow_name!r}")
    if not isinstance(inputs, dict):
        raise TypeError("A workflow's input is a dict of keyword arguments.")
    now = now_or(now)
    if workflow_id is not None:
        existing = _executions().filter(workflow_id=workflow_id).values_list("pk", flat=True)
        if existing:
            return existing[0], False
    try:
        with transaction.atomic(using=alias()):
            execution = _executions().create(
                workflow_name=workflow_name,
                workflow_id=workflow_id,
                input=inputs,
                parent_id=parent_id,
                wake_at=now,
            )
            HistoryEvent.objects.using(alias()).create(
                execution=execution,
                sequence=1,
                kind=EventKind.WORKFLOW_STARTED,
                name=workflow_name,
                data={"input": inputs},
            )
            notify("workflow", execution.pk)
    except IntegrityError:
        if workflow_id is None:
            raise
        return _executions().get(workflow_id=workflow_id).pk, False
    return execution.pk, True


def claim_workflow_tasks(
    owner: str,
    limit: int,
    *,
    now: datetime | None = None,
    execution_ids: list[uuid.UUID] | None = None,
) -> list[WorkflowClaim]:
    """Take the lease of up to `limit` due workflow tasks, expired leases included."""
    now = now_or(now)
    claimable = Q(status=ExecutionStatus.RUNNING, wake_at__lte=now) & (
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    )
    with transaction.atomic(using=alias()):
        candidates = _executions().filter(claimable)
        if execution_ids is not None:
            candidates = candidates.filter(pk__in=execution_ids)
        ids = list(
            candidates.order_by("wake_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return []
        # The condition is repeated so that a racing claimer (SQLite has no row locks) loses.
        _executions().filter(claimable, pk__in=ids).update(
            lease_owner=owner, lease_until=lease_deadline(now), epoch=F("epoch") + 1
        )
        rows = _executions().filter(pk__in=ids, lease_owner=owner, lease_until__gt=now)
        return [
            WorkflowClaim(
                execution_id=row.pk,
                workflow_name=row.workflow_name,
                workflow_id=row.workflow_id,
                parent_id=row.parent_id,
                owner=owner,
                epoch=row.epoch,
                inbox_version=row.inbox_version,
            )
            for row in rows.order_by("wake_at")
        ]


def _to_event(row: HistoryEvent) -> Event:
    return Event(row.kind, row.command_seq, row.name, row.data)


def load_history(execution_id: uuid.UUID, after: int = 0) -> list[Event]:
    """The execution's history events after sequence number `after`, in order."""
    rows = (
        HistoryEvent.objects.using(alias())
        .filter(execution_id=execution_id, sequence__gt=after)
        .order_by("sequence")
    )
    return [_to_event(row) for row in rows]


def load_inbox(execution_id: uuid.UUID) -> Inbox:
    """Finished activities, signals and a cancel request not yet delivered to the workflow."""
    inbox = Inbox()
    outcomes = (
        ActivityTask.objects.using(alias())
        .filter(execution_id=execution_id, delivered=False, status__in=ActivityStatus.TERMINAL)
        .order_by("finished_at", "pk")
    )
    for task in outcomes:
        if task.status == ActivityStatus.COMPLETED:
            event = Event(
                EventKind.ACTIVITY_COMPLETED,
                task.command_seq,
                task.activity_name,
                {"result": task.result},
            )
        else:
            event = Event(
                EventKind.ACTIVITY_FAILED,
                task.command_seq,
                task.activity_name,
                {"error": task.error or {}, "status": task.status},
            )
        inbox.activity_outcomes.append((task.pk, event))
    for signal in PendingSignal.objects.using(alias()).filter(execution_id=execution_id):
        inbox.signals.append(
            (
                signal.pk,
                Event(
                    EventKind.SIGNAL_RECEIVED, name=signal.name, data={"payload": signal.payload}
                ),
            )
        )
    cancel = (
        _executions()
        .filter(pk=execution_id, cancel_requested=True)
        .values_list("cancel_reason", flat=True)
    )
    if cancel:
        inbox.cancel_reason = cancel[0]
    return inbox


_COMPLETION_STATUS = {
    EventKind.WORKFLOW_COMPLETED: ExecutionStatus.COMPLETED,
    EventKind.WORKFLOW_FAILED: ExecutionStatus.FAILED,
    EventKind.WORKFLOW_CANCELED: ExecutionStatus.CANCELED,
}


def _fenced(claim: WorkflowClaim):
    return _executions().filter(pk=claim.execution_id, epoch=claim.epoch, lease_owner=claim.owner)


def record_workflow_task(
    claim: WorkflowClaim,
    *,
    history_length: int,
    events: list[Event],
    delivered_activity_ids: list[int] = (),
    consumed_signal_ids: list[int] = (),
    next_wake_at: datetime | None = None,
    now: datetime | None = None,
) -> None:
    """Append a workflow task's events, schedule its activities and release its lease.

    All or nothing, and only while `claim` still holds the lease (`LeaseLost` otherwise).
    An input that arrived while the task ran makes it due again at once.
    """
    now = now_or(now)
    completion = next((e for e in events if e.kind in EventKind.TERMINAL), None)
    changes: dict[str, Any] = {"lease_owner": "", "lease_until": None}
    if completion is not None:
        changes.update(
            status=_COMPLETION_STATUS[completion.kind],
            result=completion.data.get("result"),
            error=completion.data.get("error"),
            finished_at=now,
            wake_at=None,
        )
    else:
        changes["wake_at"] = Case(
            When(~Q(inbox_version=claim.inbox_version), then=_at(now)),
            default=_at(next_wake_at),
        )
    scheduled = [e for e in events if e.kind == EventKind.ACTIVITY_SCHEDULED]
    with transaction.atomic(using=alias()):
        if not _fenced(claim).update(**changes):
            raise LeaseLost(f"Execution {claim.execution_id} is no longer leased to {claim.owner}.")
        HistoryEvent.objects.using(alias()).bulk_create(
            HistoryEvent(
                execution_id=claim.execution_id,
                sequence=history_length + offset,
                kind=event.kind,
                command_seq=event.command_seq,
                name=event.name,
                data=event.data,
            )
            for offset, event in enumerate(events, start=1)
        )
        ActivityTask.objects.using(alias()).bulk_create(
            ActivityTask(
                execution_id=claim.execution_id,
                command_seq=event.command_seq,
                activity_name=event.name,
                queue=event.data.get("queue", "default"),
                args=event.data.get("args", []),
                kwargs=event.data.get("kwargs", {}),
                options=event.data.get("options", {}),
                due_at=now,
            )
            for event in scheduled
        )
        tasks = ActivityTask.objects.using(alias())
        if delivered_activity_ids:
            tasks.filter(pk__in=delivered_activity_ids).update(delivered=True)
        if consumed_signal_ids:
            PendingSignal.objects.using(alias()).filter(pk__in=consumed_signal_ids).delete()
        if completion is not None:
            tasks.filter(execution_id=claim.execution_id, status=ActivityStatus.QUEUED).update(
                status=ActivityStatus.CANCELED, finished_at=now, delivered=True
            )
            if claim.parent_id is not None:
                wake_execution(claim.parent_id, now)
        if scheduled:
            notify("activity", claim.execution_id)


def wake_execution(execution_id: uuid.UUID, now: datetime) -> None:
    """Mark new input for an execution and make its workflow task due now."""
    _executions().filter(pk=execution_id, status=ExecutionStatus.RUNNING).update(
        inbox_version=F("inbox_version") + 1,
        wake_at=Coalesce(Least(F("wake_at"), _at(now)), _at(now)),
    )
    notify("workflow", execution_id)


def park_execution(claim: WorkflowClaim, error: dict[str, str]) -> None:
    """Block the execution on a non-determinism error without touching its history."""
    with transaction.atomic(using=alias()):
        if not _fenced(claim).update(
            status=ExecutionStatus.BLOCKED, error=error, lease_owner="", lease_until=None
        ):
            raise LeaseLost(f"Execution {claim.execution_id} is no longer leased to {claim.owner}.")
