"""What a worker process needs besides claiming: its own row, releases, and when to wake."""

from __future__ import annotations

import os
import socket
from datetime import datetime

from django.db import transaction
from django.db.models import Exists, F, Min, OuterRef, Q

from ..constants import ActivityStatus, ExecutionStatus
from ..models import ActivityTask, Worker, WorkflowExecution
from .db import alias, notify, now_or


def register_worker(worker_id: str, queues: list[str], *, now: datetime | None = None) -> None:
    now = now_or(now)
    Worker.objects.using(alias()).update_or_create(
        pk=worker_id,
        defaults={
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "queues": queues,
            "started_at": now,
            "heartbeat_at": now,
        },
    )


def beat_worker(worker_id: str, *, stopped: bool = False, now: datetime | None = None) -> None:
    now = now_or(now)
    changes = {"heartbeat_at": now}
    if stopped:
        changes["stopped_at"] = now
    Worker.objects.using(alias()).filter(pk=worker_id).update(**changes)


def release_activity_tasks(
    owner: str, task_ids: list[int], *, uncharged: bool = False, now: datetime | None = None
) -> int:
    """Hand running attempts back to the queue at once, for another worker to take.

    `uncharged` gives the attempt back too (its next run has the same attempt number and
    idempotency key): for attempts cut off through no fault of their own.
    """
    now = now_or(now)
    changes = {
        "status": ActivityStatus.QUEUED,
        "lease_owner": "",
        "lease_until": None,
        "due_at": now,
    }
    if uncharged:
        changes["attempt"] = F("attempt") - 1
    with transaction.atomic(using=alias()):
        released = (
            ActivityTask.objects.using(alias())
            .filter(pk__in=task_ids, lease_owner=owner, status=ActivityStatus.RUNNING)
            .update(**changes)
        )
        if released:
            notify("activity", owner)
    return released


def unpark_executions(*, now: datetime | None = None) -> int:
    """Give every parked execution another try: the code deployed now may be compatible."""
    now = now_or(now)
    with transaction.atomic(using=alias()):
        count = (
            WorkflowExecution.objects.using(alias())
            .filter(status=ExecutionStatus.BLOCKED)
            .update(status=ExecutionStatus.RUNNING, wake_at=now)
        )
        if count:
            notify("workflow", "unparked")
    return count


def next_due_at(
    *,
    queues: list[str] | None = None,
    activities: bool = True,
    execution_ids: list | None = None,
    now: datetime | None = None,
) -> datetime | None:
    """The earliest moment some work may become claimable: a timer, a retry, a lease expiring.

    With `activities=False` (no free process) only workflow tasks count.
    """
    now = now_or(now)
    executions = WorkflowExecution.objects.using(alias()).filter(status=ExecutionStatus.RUNNING)
    tasks = ActivityTask.objects.using(alias())
    if execution_ids is not None:
        executions = executions.filter(pk__in=execution_ids)
        tasks = tasks.filter(execution_id__in=execution_ids)
    unleased = Q(lease_until__isnull=True) | Q(lease_until__lte=now)
    moments = [
        executions.filter(unleased, wake_at__isnull=False).aggregate(at=Min("wake_at"))["at"],
        executions.filter(lease_until__gt=now).aggregate(at=Min("lease_until"))["at"],
    ]
    if activities:
        if queues:
            tasks = tasks.filter(queue__in=queues)
        moments += [
            tasks.filter(status=ActivityStatus.QUEUED).aggregate(at=Min("due_at"))["at"],
            tasks.filter(status=ActivityStatus.RUNNING).aggregate(at=Min("lease_until"))["at"],
        ]
    moments = [moment for moment in moments if moment is not None]
    return min(moments) if moments else None


def prune_executions(before: datetime, *, batch: int = 500) -> int:
    """Delete ended executions (history, activity tasks and signals with them) that finished
    before `before`, `batch` at a time so no transaction grows large. An execution with a
    child still running is kept. Returns how many executions were deleted."""
    deleted = 0
    executions = WorkflowExecution.objects.using(alias())
    while True:
        live_children = executions.filter(
            parent_id=OuterRef("pk"), status__in=[ExecutionStatus.RUNNING, ExecutionStatus.BLOCKED]
        )
        ids = list(
            executions.filter(status__in=ExecutionStatus.TERMINAL, finished_at__lt=before)
            .exclude(Exists(live_children))
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            return deleted
        with transaction.atomic(using=alias()):
            executions.filter(pk__in=ids).delete()
        deleted += len(ids)
