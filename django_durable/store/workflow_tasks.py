"""Recording workflow tasks: many of them in one transaction, each all or nothing.

A workflow task's record appends its history events, releases (or ends) its execution
(storing, in the same UPDATE, what it now waits for), starts its children, schedules its
activities and consumes its inputs. The worker records a batch of tasks together: one
transaction, bulk inserts, set-based updates and one NOTIFY, instead of one of each per
task. Rows are locked in the store's order (see `executions`): the parents of completing
children first, then the recorded executions in primary-key order, their children, then
activity rows, then signals.

A task whose lease was lost is left out of the batch (nothing of it is written); any
database error rolls the whole batch back, and the caller records the tasks one by one
(`record_workflow_task`), where a value the database refuses parks only its own execution.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction

from ..constants import ActivityStatus, EventKind, ExecutionStatus
from ..models import ActivityTask, HistoryEvent, PendingSignal, WorkflowExecution
from ..payloads import storable_error
from ..runtime.events import Event
from .activities import ActivityClaim
from .db import alias, lease_deadline, notify, now_or
from .executions import (
    WorkflowClaim,
    _executions,
    _lease_lost,
    end_leftovers_of,
    wake_executions,
)
from .sets import insert_rows, locked_rows, update_each
from .starts import create_execution

_COMPLETION_STATUS = {
    EventKind.WORKFLOW_COMPLETED: ExecutionStatus.COMPLETED,
    EventKind.WORKFLOW_FAILED: ExecutionStatus.FAILED,
    EventKind.WORKFLOW_CANCELED: ExecutionStatus.CANCELED,
    EventKind.WORKFLOW_TIMED_OUT: ExecutionStatus.TIMED_OUT,
}
_RELEASED: dict[str, Any] = {"lease_owner": "", "lease_until": None}


@dataclass
class TaskRecord:
    """What one workflow task did, to be recorded while `claim` holds the lease."""

    claim: WorkflowClaim
    history_length: int
    events: list[Event]
    delivered_activity_ids: Sequence[int] = ()
    delivered_child_ids: Sequence[uuid.UUID] = ()
    consumed_signal_ids: Sequence[int] = ()
    next_wake_at: datetime | None = None
    # Command numbers of scheduled activities this worker runs itself: they are inserted
    # already leased to the claim's owner, so nobody claims them and no NOTIFY is sent.
    leased_activity_seqs: Collection[int] = ()
    # False when the workflow knows it leaves no unfinished activity or child behind as it
    # ends (it awaited them all), which spares the queries that would look for them.
    leftovers: bool = True
    # What the workflow waits for after this task (`WorkflowInstance.waits()`), stored on
    # the execution for operators. None leaves the stored value as it is; an end stores [].
    waiting: list[dict[str, Any]] | None = None

    @property
    def completion(self) -> Event | None:
        return next((e for e in self.events if e.kind in EventKind.TERMINAL), None)


@dataclass
class RecordedTask:
    """The outcome of one record: lost (nothing written), or the activities leased here."""

    lost: bool = False
    activities: list[ActivityClaim] = field(default_factory=list)


def record_workflow_task(
    claim: WorkflowClaim,
    *,
    history_length: int,
    events: list[Event],
    delivered_activity_ids: Sequence[int] = (),
    delivered_child_ids: Sequence[uuid.UUID] = (),
    consumed_signal_ids: Sequence[int] = (),
    next_wake_at: datetime | None = None,
    waiting: list[dict[str, Any]] | None = None,
    now: datetime | None = None,
) -> None:
    """Record one workflow task; `LeaseLost` (nothing written) if its lease moved on."""
    record = TaskRecord(
        claim,
        history_length,
        events,
        delivered_activity_ids,
        delivered_child_ids,
        consumed_signal_ids,
        next_wake_at,
        waiting=waiting,
    )
    if record_workflow_tasks([record], now=now)[0].lost:
        raise _lease_lost(claim)


def record_workflow_tasks(
    records: Sequence[TaskRecord], *, now: datetime | None = None
) -> list[RecordedTask]:
    """Record many workflow tasks in one transaction; see the module docstring.

    An input that arrived while a task ran makes its execution due again at once, and
    tells the other workers so.
    """
    now = now_or(now)
    results = [RecordedTask() for _ in records]
    if not records:
        return results
    order = sorted(range(len(records)), key=lambda i: records[i].claim.execution_id)
    with transaction.atomic(using=alias()):
        parents = {
            r.claim.parent_id
            for r in records
            if r.claim.parent_id is not None and r.completion is not None
        }
        wake_executions(sorted(parents), now)  # the ancestors' locks come first
        lost, missed = _fence(records, now)
        for i in lost:
            results[i].lost = True
        kept = [i for i in order if not results[i].lost]
        _write(records, results, kept, now)
        if missed:
            notify("workflow", missed[0])  # one hint for all: every wake-up re-queries
    return results


def _fence(records: Sequence[TaskRecord], now: datetime) -> tuple[list[int], list[uuid.UUID]]:
    """Release (or end) every execution whose lease still holds, in two statements: lock
    the rows in primary-key order and read their fences, then one UPDATE for all.

    Returns the indexes of the records whose lease was lost (nothing of them is written),
    and the executions an input reached while their task ran: they are due again at once.
    """
    rows: dict[uuid.UUID, WorkflowExecution] = {}
    for generation in _generations(records):  # an ancestor's lock before its descendants'
        rows |= locked_rows(WorkflowExecution, generation, "epoch", "lease_owner", "inbox_version")
    lost, missed = [], []
    changes: dict[uuid.UUID, dict[str, Any]] = {}
    for i, record in enumerate(records):
        claim = record.claim
        row = rows.get(claim.execution_id)
        if row is None or (row.epoch, row.lease_owner) != (claim.epoch, claim.owner):
            lost.append(i)
            continue
        completion = record.completion
        if completion is None:
            wake_at = record.next_wake_at
            if row.inbox_version != claim.inbox_version:
                wake_at = now
                missed.append(claim.execution_id)
            changes[claim.execution_id] = {"wake_at": wake_at}
            if record.waiting is not None:
                changes[claim.execution_id]["waiting"] = record.waiting
            continue
        if completion.data.get("error") is not None:  # an error must always be storable
            completion.data["error"] = storable_error(completion.data["error"])
        changes[claim.execution_id] = {
            "status": _COMPLETION_STATUS[completion.kind],
            "result": completion.data.get("result"),
            "error": completion.data.get("error"),
            "finished_at": now,
            "wake_at": None,
            "waiting": [],
        }
    update_each(WorkflowExecution, changes, _RELEASED)
    return lost, missed


def _generations(records: Sequence[TaskRecord]) -> list[list[uuid.UUID]]:
    """The batch's executions by generation within the batch: those whose parent is not in
    it, then their children in it, and so on; each generation in primary-key order (as
    `locked_rows` locks it). A parent and its child recorded together are thus locked
    parent first, as everywhere else in the store."""
    parent_of = {r.claim.execution_id: r.claim.parent_id for r in records}
    depth: dict[uuid.UUID, int] = {}
    for pk in parent_of:
        chain, node = [], pk
        while node in parent_of and node not in depth and node not in chain:
            chain.append(node)
            node = parent_of[node]
        base = depth.get(node, -1) if node in parent_of else -1
        for offset, member in enumerate(reversed(chain), start=1):
            depth[member] = base + offset
    generations: dict[int, list[uuid.UUID]] = {}
    for pk, level in depth.items():
        generations.setdefault(level, []).append(pk)
    return [sorted(generations[level]) for level in sorted(generations)]


def _write(
    records: Sequence[TaskRecord], results: list[RecordedTask], kept: list[int], now: datetime
) -> None:
    """Everything but the executions' own rows, for the records whose lease held."""
    insert_rows(
        HistoryEvent,
        [
            {
                "execution": records[i].claim.execution_id,
                "sequence": records[i].history_length + offset,
                "kind": event.kind,
                "command_seq": event.command_seq,
                "name": event.name,
                "data": event.data,
                "created_at": now,
            }
            for i in kept
            for offset, event in enumerate(records[i].events, start=1)
        ],
    )
    delivered_children = [pk for i in kept for pk in records[i].delivered_child_ids]
    if delivered_children:
        _executions().filter(pk__in=delivered_children).update(delivered_to_parent=True)
    for i in kept:
        for event in records[i].events:
            if event.kind == EventKind.CHILD_WORKFLOW_STARTED:
                create_execution(
                    event.name,
                    event.data["input"],
                    now,
                    execution_id=uuid.UUID(event.data["execution_id"]),
                    parent_id=records[i].claim.execution_id,
                    parent_command_seq=event.command_seq,
                    timeout=event.data.get("timeout"),
                )
    # Their children, then their activities; only where the workflow may have left some.
    end_leftovers_of(
        [
            records[i].claim.execution_id
            for i in kept
            if records[i].completion is not None and records[i].leftovers
        ],
        now,
    )
    _schedule_activities(records, results, kept, now)
    delivered = [pk for i in kept for pk in records[i].delivered_activity_ids]
    if delivered:
        ActivityTask.objects.using(alias()).filter(pk__in=delivered).update(delivered=True)
    consumed = [pk for i in kept for pk in records[i].consumed_signal_ids]
    if consumed:
        PendingSignal.objects.using(alias()).filter(pk__in=consumed).delete()


def _schedule_activities(
    records: Sequence[TaskRecord], results: list[RecordedTask], kept: list[int], now: datetime
) -> None:
    """Insert the scheduled activities: leased to this worker where it runs them itself,
    queued (and announced with one NOTIFY) for any worker otherwise."""
    owners: list[tuple[int, str]] = []
    rows: list[dict[str, Any]] = []
    for i in kept:
        claim = records[i].claim
        for event in records[i].events:
            if event.kind != EventKind.ACTIVITY_SCHEDULED:
                continue
            leased = event.command_seq in records[i].leased_activity_seqs
            owners.append((i, claim.owner if leased else ""))
            rows.append(
                {
                    "execution": claim.execution_id,
                    "command_seq": event.command_seq,
                    "activity_name": event.name,
                    "queue": event.data.get("queue", "default"),
                    "args": event.data.get("args", []),
                    "kwargs": event.data.get("kwargs", {}),
                    "options": event.data.get("options", {}),
                    "status": ActivityStatus.RUNNING if leased else ActivityStatus.QUEUED,
                    "attempt": 1 if leased else 0,
                    "due_at": now,
                    "lease_owner": claim.owner if leased else "",
                    "lease_until": lease_deadline(now) if leased else None,
                    "delivered": False,
                    "created_at": now,
                    "started_at": now if leased else None,
                }
            )
    if not rows:
        return
    pks = insert_rows(ActivityTask, rows, returning=True)
    for (i, owner), pk, row in zip(owners, pks, rows, strict=True):
        if owner:
            results[i].activities.append(
                ActivityClaim(
                    task_id=pk,
                    execution_id=row["execution"],
                    command_seq=row["command_seq"],
                    activity_name=row["activity_name"],
                    args=row["args"],
                    kwargs=row["kwargs"],
                    attempt=1,
                    owner=owner,
                    options=row["options"],
                    heartbeat_details=None,
                    scheduled_at=now,
                    started_at=now,
                    workflow_name=records[i].claim.workflow_name,
                )
            )
    if any(not owner for _, owner in owners):
        notify("activity", "scheduled")
