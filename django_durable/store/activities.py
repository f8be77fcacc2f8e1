"""Activity tasks: claim under a lease, extend the lease, record the outcome at most once."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F, Q

from ..constants import ActivityStatus
from ..models import ActivityTask
from .db import alias, lease_deadline, notify, now_or
from .executions import locked_in_order, wake_execution


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

    @property
    def idempotency_key(self) -> str:
        return f"{self.execution_id}:{self.command_seq}:{self.attempt}"


def _tasks():
    return ActivityTask.objects.using(alias())


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
        return [
            ActivityClaim(
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
            )
            for row in rows.order_by("due_at", "pk")
        ]


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
    from a worker that lost its lease is discarded. May raise `DataError` for a value the
    database refuses (the caller records a failure instead; see `engine.activities`).
    """
    now = now_or(now)
    if error is None:
        outcome = {"status": ActivityStatus.COMPLETED, "result": result, "finished_at": now}
    elif retry_at is not None:
        outcome = {"status": ActivityStatus.QUEUED, "error": error, "due_at": retry_at}
    else:
        outcome = {"status": status or ActivityStatus.FAILED, "error": error, "finished_at": now}
    final = outcome["status"] != ActivityStatus.QUEUED
    with transaction.atomic(using=alias()):
        if final:
            # The execution before its activity: the store's lock order.
            wake_execution(claim.execution_id, now)
        if not _current(claim).update(lease_owner="", lease_until=None, **outcome):
            transaction.set_rollback(True, using=alias())  # the wake, too, is undone
            return False
        if not final:
            notify("activity", claim.execution_id)  # others re-compute when to wake
    return True


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
