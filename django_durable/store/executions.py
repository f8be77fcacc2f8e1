"""Executions and their history: start, claim a workflow task, record its outcome, park.

Lock order. Every transaction of the store takes its row locks in one order, so that two
of them never wait for each other (a deadlock costs the loser a whole lease):

1. executions before any other row, an ancestor before its descendants (a completing
   child locks its parent, then itself; an ending parent locks itself, then its children
   in primary-key order). A statement over many unrelated executions (a claim, an
   unpark) skips locked rows instead of waiting;
2. then activity tasks, in primary-key order (a multi-row update locks them through
   `locked_in_order`);
3. then pending signals; history rows are only inserted, under their execution's lock.

So `complete_activity_task` wakes (locks) the execution before it updates the activity,
`record_workflow_task` of a completing child wakes the parent before it fences its own
row, `request_cancel` locks the parent of a child it may end, and `end_leftovers` cancels
children before activities. Claims take rows with `SKIP LOCKED` and never wait, so they
cannot take part in a deadlock.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import DateTimeField, F, Q, Value
from django.db.models.functions import Coalesce, Least

from ..constants import ActivityStatus, EventKind, ExecutionStatus
from ..exceptions import WorkflowNotFound
from ..models import ActivityTask, HistoryEvent, PendingSignal, WorkflowExecution
from ..payloads import storable_error
from ..runtime.events import Event
from .db import alias, lease_deadline, notify, now_or
from .starts import create_execution


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
    timeout_at: datetime | None = None
    cancel_reason: str | None = None  # set when a cancel was requested


@dataclass
class Inbox:
    """Inputs that arrived for an execution and are not yet in its history."""

    activity_outcomes: list[tuple[int, Event]] = field(default_factory=list)
    children: list[tuple[uuid.UUID, Event]] = field(default_factory=list)
    signals: list[tuple[int, Event]] = field(default_factory=list)


def _at(moment: datetime | None) -> Value:
    return Value(moment, output_field=DateTimeField())


def _executions():
    return WorkflowExecution.objects.using(alias())


def locked_in_order(rows):
    """`rows` for an update that locks them in primary-key order, in one statement.

    A multi-row UPDATE locks rows in whatever order its plan visits them; two updates over
    the same rows in different orders deadlock. The subquery locks them sorted instead.
    """
    return rows.filter(pk__in=rows.order_by("pk").select_for_update().values("pk"))


def get_execution(execution_id: uuid.UUID | str) -> WorkflowExecution:
    """The execution with that id; `WorkflowNotFound` if there is none."""
    try:
        return _executions().get(pk=execution_id)
    except (WorkflowExecution.DoesNotExist, ValidationError, ValueError):
        raise WorkflowNotFound(f"No workflow execution has the id {str(execution_id)!r}.") from None


def claim_workflow_tasks(
    owner: str,
    limit: int,
    *,
    now: datetime | None = None,
    execution_ids: Collection[uuid.UUID] | None = None,
    workflow_names: Collection[str] | None = None,
) -> list[WorkflowClaim]:
    """Take the lease of up to `limit` due workflow tasks, expired leases included.

    With `workflow_names`, only executions of those workflows: a worker claims only what its
    code can run, so during a rolling deploy new workflows wait for a worker that knows them.
    """
    now = now_or(now)
    claimable = Q(status=ExecutionStatus.RUNNING, wake_at__lte=now) & (
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    )
    if workflow_names is not None:
        claimable &= Q(workflow_name__in=list(workflow_names))
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
                timeout_at=row.timeout_at,
                cancel_reason=row.cancel_reason if row.cancel_requested else None,
            )
            for row in rows.order_by("wake_at")
        ]


def family_of(execution_id: uuid.UUID) -> list[uuid.UUID]:
    """The execution and all its descendants (children, their children, ...)."""
    family, generation = [execution_id], [execution_id]
    while generation:
        generation = list(
            _executions().filter(parent_id__in=generation).values_list("pk", flat=True)
        )
        family += generation
    return family


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


def load_inbox(execution_id: uuid.UUID, *, activities: bool = True, children: bool = True) -> Inbox:
    """Finished activities and children, and signals, not yet delivered to the workflow.

    A caller that knows the workflow awaits no activity (or no child) skips that query.
    (A cancel request comes with the claim.)
    """
    return Inbox(
        activity_outcomes=_activity_outcomes(execution_id) if activities else [],
        children=_ended_children(execution_id) if children else [],
        signals=_pending_signals(execution_id),
    )


def _activity_outcomes(execution_id: uuid.UUID) -> list[tuple[int, Event]]:
    outcomes = []
    tasks = (
        ActivityTask.objects.using(alias())
        .filter(execution_id=execution_id, delivered=False, status__in=ActivityStatus.TERMINAL)
        .order_by("finished_at", "pk")
    )
    for task in tasks:
        if task.status == ActivityStatus.COMPLETED:
            kind, data = EventKind.ACTIVITY_COMPLETED, {"result": task.result}
        else:
            kind, data = (
                EventKind.ACTIVITY_FAILED,
                {"error": task.error or {}, "status": task.status},
            )
        outcomes.append((task.pk, Event(kind, task.command_seq, task.activity_name, data)))
    return outcomes


def _ended_children(execution_id: uuid.UUID) -> list[tuple[uuid.UUID, Event]]:
    ended = []
    rows = (
        _executions()
        .filter(
            parent_id=execution_id, delivered_to_parent=False, status__in=ExecutionStatus.TERMINAL
        )
        .order_by("finished_at", "pk")
    )
    for child in rows:
        data = {"execution_id": str(child.pk), "status": child.status}
        if child.status == ExecutionStatus.COMPLETED:
            data["result"] = child.result
        elif child.error:
            data["error"] = child.error
        event = Event(
            EventKind.CHILD_WORKFLOW_ENDED, child.parent_command_seq, child.workflow_name, data
        )
        ended.append((child.pk, event))
    return ended


def _pending_signals(execution_id: uuid.UUID) -> list[tuple[int, Event]]:
    return [
        (
            signal.pk,
            Event(EventKind.SIGNAL_RECEIVED, name=signal.name, data={"payload": signal.payload}),
        )
        for signal in PendingSignal.objects.using(alias()).filter(execution_id=execution_id)
    ]


_COMPLETION_STATUS = {
    EventKind.WORKFLOW_COMPLETED: ExecutionStatus.COMPLETED,
    EventKind.WORKFLOW_FAILED: ExecutionStatus.FAILED,
    EventKind.WORKFLOW_CANCELED: ExecutionStatus.CANCELED,
    EventKind.WORKFLOW_TIMED_OUT: ExecutionStatus.TIMED_OUT,
}


def _fenced(claim: WorkflowClaim):
    return _executions().filter(pk=claim.execution_id, epoch=claim.epoch, lease_owner=claim.owner)


def _lease_lost(claim: WorkflowClaim) -> LeaseLost:
    return LeaseLost(f"Execution {claim.execution_id} is no longer leased to {claim.owner}.")


def record_workflow_task(
    claim: WorkflowClaim,
    *,
    history_length: int,
    events: list[Event],
    delivered_activity_ids: list[int] = (),
    delivered_child_ids: list[uuid.UUID] = (),
    consumed_signal_ids: list[int] = (),
    next_wake_at: datetime | None = None,
    now: datetime | None = None,
) -> None:
    """Append a workflow task's events, schedule its activities and release its lease.

    All or nothing, and only while `claim` still holds the lease (`LeaseLost` otherwise).
    An input that arrived while the task ran makes it due again at once, and tells the
    other workers so. Rows are locked in the module's lock order: the parent of a
    completing child first, then this execution, its children, its activities, its signals.
    """
    now = now_or(now)
    completion = next((e for e in events if e.kind in EventKind.TERMINAL), None)
    scheduled = [e for e in events if e.kind == EventKind.ACTIVITY_SCHEDULED]
    children = [e for e in events if e.kind == EventKind.CHILD_WORKFLOW_STARTED]
    released: dict[str, Any] = {"lease_owner": "", "lease_until": None}
    with transaction.atomic(using=alias()):
        if completion is None:
            # The common case is one statement; only a missed input costs a second one.
            if (
                not _fenced(claim)
                .filter(inbox_version=claim.inbox_version)
                .update(wake_at=next_wake_at, **released)
            ):
                if not _fenced(claim).update(wake_at=now, **released):
                    raise _lease_lost(claim)
                notify("workflow", claim.execution_id)
        else:
            if claim.parent_id is not None:
                wake_execution(claim.parent_id, now)  # the ancestor's lock comes first
            if completion.data.get("error") is not None:  # an error must always be storable
                completion.data["error"] = storable_error(completion.data["error"])
            if not _fenced(claim).update(
                status=_COMPLETION_STATUS[completion.kind],
                result=completion.data.get("result"),
                error=completion.data.get("error"),
                finished_at=now,
                wake_at=None,
                **released,
            ):
                raise _lease_lost(claim)
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
        if delivered_child_ids:
            _executions().filter(pk__in=delivered_child_ids).update(delivered_to_parent=True)
        for event in children:
            create_execution(
                event.name,
                event.data["input"],
                now,
                execution_id=uuid.UUID(event.data["execution_id"]),
                parent_id=claim.execution_id,
                parent_command_seq=event.command_seq,
                timeout=event.data.get("timeout"),
            )
        if completion is not None:
            end_leftovers(claim.execution_id, now)  # its children, then its activities
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
        if delivered_activity_ids:
            ActivityTask.objects.using(alias()).filter(pk__in=delivered_activity_ids).update(
                delivered=True
            )
        if consumed_signal_ids:
            PendingSignal.objects.using(alias()).filter(pk__in=consumed_signal_ids).delete()
        if scheduled:
            notify("activity", claim.execution_id)


def end_leftovers(execution_id: uuid.UUID, now: datetime) -> None:
    """An execution ended: ask its children to cancel and cancel its unfinished activities.

    Children first, in primary-key order, then the activities: the module's lock order.
    A running activity learns it at its next heartbeat and the worker stops its process
    if it does not stop by itself.
    """
    live_children = _executions().filter(
        parent_id=execution_id, status__in=[ExecutionStatus.RUNNING, ExecutionStatus.BLOCKED]
    )
    for child_id in live_children.order_by("pk").values_list("pk", flat=True):
        _executions().filter(pk=child_id, cancel_requested=False).update(
            cancel_requested=True, cancel_reason="The parent execution ended."
        )
        wake_execution(child_id, now)
    unfinished = ActivityTask.objects.using(alias()).filter(
        execution_id=execution_id,
        status__in=[ActivityStatus.QUEUED, ActivityStatus.RUNNING],
    )
    locked_in_order(unfinished).update(
        status=ActivityStatus.CANCELED, finished_at=now, delivered=True
    )


def wake_execution(execution_id: uuid.UUID, now: datetime) -> None:
    """Mark new input for an execution and make its workflow task due now."""
    _executions().filter(pk=execution_id, status=ExecutionStatus.RUNNING).update(
        inbox_version=F("inbox_version") + 1,
        wake_at=Coalesce(Least(F("wake_at"), _at(now)), _at(now)),
    )
    notify("workflow", execution_id)


def park_execution(claim: WorkflowClaim, error: dict[str, Any]) -> None:
    """Block the execution with `error` as the reason, without touching its history.

    For a non-determinism error, a workflow this worker does not know, or a workflow task
    whose outcome could not be recorded (the failed record rolled back; the lease still
    holds): the error is made storable first, so parking itself cannot fail on it.
    """
    with transaction.atomic(using=alias()):
        if not _fenced(claim).update(
            status=ExecutionStatus.BLOCKED,
            error=storable_error(error),
            lease_owner="",
            lease_until=None,
        ):
            raise _lease_lost(claim)
