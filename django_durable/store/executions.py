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
from collections.abc import Collection, Mapping
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
    with transaction.atomic(using=alias(), savepoint=False):
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
        return [workflow_claim_of(row, owner) for row in rows.order_by("wake_at")]


def claim_workflow_tasks_with_inputs(
    owner: str,
    limit: int,
    *,
    held: Mapping[uuid.UUID, int],
    workflow_names: Collection[str] | None = None,
    now: datetime | None = None,
) -> tuple[list[WorkflowClaim], TaskInputs]:
    """`claim_workflow_tasks`, and in the same transaction what the claimed tasks read:
    every inbox, and the history of each execution not `held` in memory at the epoch
    before this claim (`held`: execution id -> the epoch its cached instance recorded)."""
    with transaction.atomic(using=alias()):
        claims = claim_workflow_tasks(owner, limit, now=now, workflow_names=workflow_names)
        inputs = read_task_inputs(
            [c.execution_id for c in claims if held.get(c.execution_id) != c.epoch - 1],
            [c.execution_id for c in claims],
        )
    return claims, inputs


def workflow_claim_of(row: WorkflowExecution, owner: str, *, bumped: bool = False) -> WorkflowClaim:
    """The claim of an execution row leased to `owner`; `bumped` if the row was read
    before the statement that leased it (its epoch and inbox version one behind)."""
    behind = 1 if bumped else 0
    return WorkflowClaim(
        execution_id=row.pk,
        workflow_name=row.workflow_name,
        workflow_id=row.workflow_id,
        parent_id=row.parent_id,
        owner=owner,
        epoch=row.epoch + behind,
        inbox_version=row.inbox_version + behind,
        timeout_at=row.timeout_at,
        cancel_reason=row.cancel_reason if row.cancel_requested else None,
    )


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


def load_histories(execution_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, list[Event]]:
    """The whole history of each execution, in one query (a batch of workflow tasks)."""
    histories: dict[uuid.UUID, list[Event]] = {pk: [] for pk in execution_ids}
    if not histories:
        return histories
    rows = (
        HistoryEvent.objects.using(alias())
        .filter(execution_id__in=list(histories))
        .order_by("execution_id", "sequence")
    )
    for row in rows:
        histories[row.execution_id].append(_to_event(row))
    return histories


@dataclass
class TaskInputs:
    """What workflow tasks read before they run: whole histories (of the executions not
    held in memory) and inboxes, by execution id."""

    histories: dict[uuid.UUID, list[Event]] = field(default_factory=dict)
    inboxes: dict[uuid.UUID, Inbox] = field(default_factory=dict)


def load_task_inputs(
    history_of: Collection[uuid.UUID], inbox_of: Collection[uuid.UUID]
) -> TaskInputs:
    """What a batch of workflow tasks reads, in one transaction: the whole history of the
    executions in `history_of` (not held in memory) and the inboxes of `inbox_of`."""
    with transaction.atomic(using=alias()):
        return read_task_inputs(history_of, inbox_of)


def read_task_inputs(
    history_of: Collection[uuid.UUID], inbox_of: Collection[uuid.UUID]
) -> TaskInputs:
    """`load_task_inputs` inside the caller's transaction."""
    return TaskInputs(
        load_histories(history_of),
        load_inboxes(inbox_of, activities=inbox_of, children=inbox_of),
    )


def load_inbox(execution_id: uuid.UUID, *, activities: bool = True, children: bool = True) -> Inbox:
    """Finished activities and children, and signals, not yet delivered to the workflow.

    A caller that knows the workflow awaits no activity (or no child) skips that query.
    (A cancel request comes with the claim.)
    """
    return load_inboxes(
        [execution_id],
        activities=[execution_id] if activities else [],
        children=[execution_id] if children else [],
    )[execution_id]


def load_inboxes(
    execution_ids: Collection[uuid.UUID],
    *,
    activities: Collection[uuid.UUID],
    children: Collection[uuid.UUID],
) -> dict[uuid.UUID, Inbox]:
    """The inboxes of many executions in at most three queries, one per kind of input.

    Activity outcomes are read only for `activities`, ended children only for `children`
    (the executions whose workflow may await them); signals for all.
    """
    inboxes = {pk: Inbox() for pk in execution_ids}
    if not inboxes:
        return inboxes
    if activities:
        tasks = (
            ActivityTask.objects.using(alias())
            .filter(
                execution_id__in=list(activities),
                delivered=False,
                status__in=ActivityStatus.TERMINAL,
            )
            .order_by("finished_at", "pk")
            .values_list(*_OUTCOME_FIELDS)
        )
        for row in tasks:
            outcome = dict(zip(_OUTCOME_FIELDS, row, strict=True))
            inboxes[outcome["execution_id"]].activity_outcomes.append(
                (outcome["pk"], _outcome_event(outcome))
            )
    if children:
        rows = (
            _executions()
            .filter(
                parent_id__in=list(children),
                delivered_to_parent=False,
                status__in=ExecutionStatus.TERMINAL,
            )
            .order_by("finished_at", "pk")
        )
        for child in rows:
            inboxes[child.parent_id].children.append((child.pk, _child_event(child)))
    signals = PendingSignal.objects.using(alias()).filter(execution_id__in=list(inboxes))
    for signal in signals.order_by("pk"):
        event = Event(EventKind.SIGNAL_RECEIVED, name=signal.name, data={"payload": signal.payload})
        inboxes[signal.execution_id].signals.append((signal.pk, event))
    return inboxes


_OUTCOME_FIELDS = (
    "pk",
    "execution_id",
    "status",
    "result",
    "error",
    "command_seq",
    "activity_name",
)


def _outcome_event(task: dict[str, Any]) -> Event:
    """The history event of a finished activity (its row's `_OUTCOME_FIELDS`)."""
    if task["status"] == ActivityStatus.COMPLETED:
        kind, data = EventKind.ACTIVITY_COMPLETED, {"result": task["result"]}
    else:
        kind, data = (
            EventKind.ACTIVITY_FAILED,
            {"error": task["error"] or {}, "status": task["status"]},
        )
    return Event(kind, task["command_seq"], task["activity_name"], data)


def _child_event(child: WorkflowExecution) -> Event:
    data = {"execution_id": str(child.pk), "status": child.status}
    if child.status == ExecutionStatus.COMPLETED:
        data["result"] = child.result
    elif child.error:
        data["error"] = child.error
    return Event(
        EventKind.CHILD_WORKFLOW_ENDED, child.parent_command_seq, child.workflow_name, data
    )


def end_leftovers(execution_id: uuid.UUID, now: datetime) -> None:
    """An execution ended: ask its children to cancel and cancel its unfinished activities."""
    end_leftovers_of([execution_id], now)


def end_leftovers_of(execution_ids: Collection[uuid.UUID], now: datetime) -> None:
    """Executions ended: ask their children to cancel and cancel their unfinished activities.

    Children first, in primary-key order, then the activities: the module's lock order.
    A running activity learns it at its next heartbeat and the worker stops its process
    if it does not stop by itself.
    """
    if not execution_ids:
        return
    live_children = list(
        _executions()
        .filter(
            parent_id__in=list(execution_ids),
            status__in=[ExecutionStatus.RUNNING, ExecutionStatus.BLOCKED],
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if live_children:
        asked = _executions().filter(pk__in=live_children, cancel_requested=False)
        locked_in_order(asked).update(
            cancel_requested=True, cancel_reason="The parent execution ended."
        )
        wake_executions(live_children, now)
    unfinished = ActivityTask.objects.using(alias()).filter(
        execution_id__in=list(execution_ids),
        status__in=[ActivityStatus.QUEUED, ActivityStatus.RUNNING],
    )
    locked_in_order(unfinished).update(
        status=ActivityStatus.CANCELED, finished_at=now, delivered=True
    )


def wake_execution(execution_id: uuid.UUID, now: datetime) -> None:
    """Mark new input for an execution and make its workflow task due now."""
    wake_executions([execution_id], now)


def wake_executions(execution_ids: Collection[uuid.UUID], now: datetime) -> None:
    """Mark new input for running executions and make their workflow tasks due now.

    Many rows are locked in primary-key order (`locked_in_order`); one NOTIFY for all.
    """
    if not execution_ids:
        return
    running = _executions().filter(pk__in=list(execution_ids), status=ExecutionStatus.RUNNING)
    if len(execution_ids) > 1:
        running = locked_in_order(running)
    running.update(
        inbox_version=F("inbox_version") + 1,
        wake_at=Coalesce(Least(F("wake_at"), _at(now)), _at(now)),
    )
    notify("workflow", next(iter(execution_ids)))


def _fenced(claim: WorkflowClaim):
    return _executions().filter(pk=claim.execution_id, epoch=claim.epoch, lease_owner=claim.owner)


def _lease_lost(claim: WorkflowClaim) -> LeaseLost:
    return LeaseLost(f"Execution {claim.execution_id} is no longer leased to {claim.owner}.")


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
