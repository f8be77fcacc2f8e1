"""Activity tasks: claim under a lease, extend the lease, record the outcome at most once."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F, Q

from ..constants import ActivityStatus, ExecutionStatus
from ..models import ActivityTask, WorkflowExecution
from .db import alias, lease_deadline, notify, now_or
from .executions import (
    TaskInputs,
    WorkflowClaim,
    locked_in_order,
    read_task_inputs,
    wake_executions,
    workflow_claim_of,
)
from .sets import locked_rows, update_each


@dataclass(frozen=True)
class ActivityClaim:
    """One attempt of an activity, owned by `owner`; only this attempt may record an outcome."""

    task_id: int
    execution_id: uuid.UUID
    command_seq: int
    activity_name: str
    args: list
    kwargs: dict
    attempt: int
    owner: str
    options: dict
    heartbeat_details: Any
    scheduled_at: datetime
    started_at: datetime
    workflow_name: str = ""  # of its execution: for the fields of log records and spans

    @property
    def idempotency_key(self) -> str:
        return f"{self.execution_id}:{self.command_seq}:{self.attempt}"


@dataclass(frozen=True)
class ActivityOutcome:
    """How an attempt ended, ready to record: `status` COMPLETED with a `result`, FAILED or
    TIMED_OUT with an `error`, or QUEUED with the `error` and the `retry_at` of a retry."""

    claim: ActivityClaim
    status: str
    result: Any = None
    error: dict[str, Any] | None = None
    retry_at: datetime | None = None

    @property
    def final(self) -> bool:
        return self.status != ActivityStatus.QUEUED

    def changes(self, now: datetime) -> dict[str, Any]:
        if self.status == ActivityStatus.COMPLETED:
            return {"status": self.status, "result": self.result, "finished_at": now}
        if self.status == ActivityStatus.QUEUED:
            return {"status": self.status, "error": self.error, "due_at": self.retry_at}
        return {"status": self.status, "error": self.error, "finished_at": now}


@dataclass
class RecordedOutcomes:
    """What `record_activity_outcomes` did: for each outcome whether it was recorded (False:
    its attempt was no longer current, the outcome discarded), and the workflow tasks whose
    lease it took for the caller, to run at once where the workflow is held in memory."""

    recorded: list[bool]
    continued: list[WorkflowClaim]
    inputs: TaskInputs = field(default_factory=TaskInputs)  # the inboxes of `continued`


# What a workflow claim is built from (`workflow_claim_of`), and the lease it checks.
_CLAIM_FIELDS = (
    "workflow_name",
    "workflow_id",
    "parent_id",
    "epoch",
    "inbox_version",
    "timeout_at",
    "cancel_requested",
    "cancel_reason",
    "status",
    "lease_until",
)


def _tasks():
    return ActivityTask.objects.using(alias())


def claim_of(row: ActivityTask, owner: str) -> ActivityClaim:
    """The claim of a row just leased to `owner`."""
    return ActivityClaim(
        task_id=row.pk,
        execution_id=row.execution_id,
        command_seq=row.command_seq,
        activity_name=row.activity_name,
        args=row.args,
        kwargs=row.kwargs,
        attempt=row.attempt,
        owner=owner,
        options=row.options,
        heartbeat_details=row.heartbeat_details,
        scheduled_at=row.created_at,
        started_at=row.started_at,
        workflow_name=getattr(row, "workflow_name", ""),
    )


def claim_activity_tasks(
    owner: str,
    limit: int,
    *,
    queues: Collection[str] | None = None,
    execution_ids: Collection[uuid.UUID] | None = None,
    now: datetime | None = None,
    activity_names: Collection[str] | None = None,
) -> list[ActivityClaim]:
    """Start a new attempt of up to `limit` due activities, those with expired leases too.

    With `activity_names`, only those activities: a worker claims only what its code can
    run, so during a rolling deploy a new activity waits for a worker that knows it.
    """
    now = now_or(now)
    claimable = Q(status=ActivityStatus.QUEUED, due_at__lte=now) | Q(
        status=ActivityStatus.RUNNING, lease_until__lt=now
    )
    if activity_names is not None:
        claimable &= Q(activity_name__in=list(activity_names))
    with transaction.atomic(using=alias()):
        candidates = _tasks().filter(claimable)
        if queues:
            candidates = candidates.filter(queue__in=queues)
        if execution_ids is not None:
            candidates = candidates.filter(execution_id__in=execution_ids)
        ids = list(
            candidates.order_by("due_at", "pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return []
        # The condition is repeated so that a racing claimer (SQLite has no row locks) loses.
        _tasks().filter(claimable, pk__in=ids).update(
            status=ActivityStatus.RUNNING,
            attempt=F("attempt") + 1,
            lease_owner=owner,
            lease_until=lease_deadline(now),
            started_at=now,
            heartbeat_at=None,  # a heartbeat timeout counts from this attempt's start
        )
        rows = _tasks().filter(
            pk__in=ids, status=ActivityStatus.RUNNING, lease_owner=owner, lease_until__gt=now
        )
        rows = rows.annotate(workflow_name=F("execution__workflow_name"))
        return [claim_of(row, owner) for row in rows.order_by("due_at", "pk")]


def latest_activity_task(execution_id: uuid.UUID, activity_name: str) -> ActivityTask | None:
    """The last activity task named `activity_name` that the execution scheduled, or None."""
    return (
        _tasks()
        .filter(execution_id=execution_id, activity_name=activity_name)
        .order_by("-command_seq")
        .first()
    )


def complete_activity_task(
    claim: ActivityClaim,
    *,
    result: Any = None,
    error: dict[str, str] | None = None,
    retry_at: datetime | None = None,
    status: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Record the attempt's outcome: a result, a final error, or an error to retry at `retry_at`.

    A final outcome wakes the workflow; a retry tells the other workers when it is due.
    Returns False, writing nothing, when the attempt is no longer current: a late result
    from a worker that lost its lease is discarded. It is `record_activity_outcomes` of one
    outcome, so that the at-most-once check and the lock order are written once. May raise
    `DataError` for a value the database refuses (the caller records a failure instead; see
    `engine.activities`).
    """
    if error is None:
        outcome = ActivityOutcome(claim, ActivityStatus.COMPLETED, result=result)
    elif retry_at is not None:
        outcome = ActivityOutcome(claim, ActivityStatus.QUEUED, error=error, retry_at=retry_at)
    else:
        outcome = ActivityOutcome(claim, status or ActivityStatus.FAILED, error=error)
    return record_activity_outcomes([outcome], now=now).recorded[0]


def record_activity_outcomes(
    outcomes: Sequence[ActivityOutcome],
    *,
    continue_here: Collection[uuid.UUID] = (),
    now: datetime | None = None,
) -> RecordedOutcomes:
    """Record many attempts' outcomes in one transaction, at most once each.

    Each execution that got a final outcome is woken; for those in `continue_here` (the
    caller holds the workflow in memory) whose lease is free, the lease is taken for the
    caller instead, and returned as a claim with its inbox: its next workflow task runs
    there at once, without a NOTIFY, a claim or a read of its own. Locks: the executions
    in primary-key order, then the activity rows in primary-key order (the store's lock order). One
    NOTIFY for the executions woken for others, one for the retries.
    May raise `DataError` for a value the database refuses: the caller then records the
    outcomes one by one (`complete_activity_task`) to find the one at fault.
    """
    now = now_or(now)
    recorded = [False] * len(outcomes)
    continued: list[WorkflowClaim] = []
    inputs = TaskInputs()
    if not outcomes:
        return RecordedOutcomes(recorded, continued, inputs)
    owner = outcomes[0].claim.owner
    with transaction.atomic(using=alias()):
        woken = sorted({o.claim.execution_id for o in outcomes if o.final})
        executions = locked_rows(WorkflowExecution, woken, *_CLAIM_FIELDS)
        rows = locked_rows(
            ActivityTask, {o.claim.task_id for o in outcomes}, "attempt", "lease_owner", "status"
        )
        changes: dict[int, dict[str, Any]] = {}
        for index, outcome in enumerate(outcomes):
            claim = outcome.claim
            row = rows.get(claim.task_id)
            if row is None or (row.attempt, row.lease_owner, row.status) != (
                claim.attempt,
                claim.owner,
                ActivityStatus.RUNNING,
            ):
                continue  # no longer current: the outcome is discarded
            recorded[index] = True
            changes[claim.task_id] = outcome.changes(now)
        update_each(ActivityTask, changes, {"lease_owner": "", "lease_until": None})
        with_input = {
            o.claim.execution_id
            for o, done in zip(outcomes, recorded, strict=True)
            if done and o.final
        }
        retried = any(done and not o.final for o, done in zip(outcomes, recorded, strict=True))
        take = []
        for pk in sorted(with_input):
            row = executions.get(pk)
            if row is None or row.status != ExecutionStatus.RUNNING:
                continue
            if pk in continue_here and (row.lease_until is None or row.lease_until < now):
                take.append(row)
        taken = {row.pk for row in take}
        wake_executions([pk for pk in sorted(with_input) if pk not in taken], now)
        if take:
            WorkflowExecution.objects.using(alias()).filter(pk__in=list(taken)).update(
                inbox_version=F("inbox_version") + 1,
                wake_at=now,  # should this worker die, whoever claims after the lease runs it
                lease_owner=owner,
                lease_until=lease_deadline(now),
                epoch=F("epoch") + 1,
            )
            continued = [workflow_claim_of(row, owner, bumped=True) for row in take]
            inputs = read_task_inputs([], sorted(taken))
        if retried:
            notify("activity", "retry")  # others re-compute when to wake
    return RecordedOutcomes(recorded, continued, inputs)


def _current(claim: ActivityClaim):
    """The claim's row while this attempt still owns it."""
    return _tasks().filter(
        pk=claim.task_id,
        attempt=claim.attempt,
        lease_owner=claim.owner,
        status=ActivityStatus.RUNNING,
    )


def record_heartbeat(claim: ActivityClaim, details: Any, *, now: datetime | None = None) -> bool:
    """Store the attempt's progress; False if it no longer runs (canceled, or lease lost)."""
    return bool(_current(claim).update(heartbeat_details=details, heartbeat_at=now_or(now)))


def attempt_states(task_ids: list[int]) -> dict[int, tuple[str, datetime | None]]:
    """Status and last heartbeat of activity tasks, for the worker's watchdog."""
    rows = _tasks().filter(pk__in=task_ids).values_list("pk", "status", "heartbeat_at")
    return {pk: (status, heartbeat_at) for pk, status, heartbeat_at in rows}


def extend_activity_leases(owner: str, task_ids: list[int], *, now: datetime | None = None) -> int:
    """Renew this owner's leases on running activities; returns how many it still holds."""
    now = now_or(now)
    held = _tasks().filter(pk__in=task_ids, lease_owner=owner, status=ActivityStatus.RUNNING)
    with transaction.atomic(using=alias()):  # row locks, in the store's order, need one
        return locked_in_order(held).update(lease_until=lease_deadline(now))
