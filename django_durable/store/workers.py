"""What a worker process needs besides claiming: its own row, releases, and when to wake;
and what the live workers can run, for operators."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)

from ..conf import durable_setting
from ..constants import ActivityStatus, ExecutionStatus
from ..models import ActivityTask, Worker, WorkflowExecution
from .db import alias, notify, now_or
from .executions import locked_in_order

LIVE_LEASES = 3  # a worker that has not beaten for this many lease lengths is gone


def register_worker(
    worker_id: str,
    queues: Collection[str],
    *,
    workflows: Collection[str] = (),
    activities: Collection[str] = (),
    now: datetime | None = None,
) -> None:
    """Record the worker process and what its code can run: its queues (empty: all) and
    the names of the workflows and activities it registered, so that work nobody can run
    shows as waiting (admin, `unrunnable_work`)."""
    now = now_or(now)
    Worker.objects.using(alias()).update_or_create(
        pk=worker_id,
        defaults={
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "queues": sorted(queues),
            "workflows": sorted(workflows),
            "activities": sorted(activities),
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
        held = ActivityTask.objects.using(alias()).filter(
            pk__in=task_ids, lease_owner=owner, status=ActivityStatus.RUNNING
        )
        released = locked_in_order(held).update(**changes)
        if released:
            notify("activity", owner)
    return released


def unpark_executions(*, now: datetime | None = None) -> int:
    """Give every parked execution another try: the code deployed now may be compatible.

    Rows locked at this moment (a cancel is ending them) are skipped, so this statement
    over many executions never waits for a lock and cannot take part in a deadlock.
    """
    now = now_or(now)
    parked = WorkflowExecution.objects.using(alias()).filter(status=ExecutionStatus.BLOCKED)
    with transaction.atomic(using=alias()):
        free = parked.select_for_update(skip_locked=True).values("pk")
        count = parked.filter(pk__in=free).update(status=ExecutionStatus.RUNNING, wake_at=now)
        if count:
            notify("workflow", "unparked")
    return count


def next_due_at(
    *,
    queues: Collection[str] | None = None,
    activities: bool = True,
    execution_ids: Collection | None = None,
    now: datetime | None = None,
    workflow_names: Collection[str] | None = None,
    activity_names: Collection[str] | None = None,
) -> datetime | None:
    """The earliest moment some work may become claimable: a timer, a retry, a lease expiring.

    With `activities=False` (no free process) only workflow tasks count. With
    `workflow_names` / `activity_names`, only work of those names: what the worker asking
    cannot run must not wake it.
    """
    now = now_or(now)
    executions = WorkflowExecution.objects.using(alias()).filter(status=ExecutionStatus.RUNNING)
    tasks = ActivityTask.objects.using(alias())
    if execution_ids is not None:
        executions = executions.filter(pk__in=execution_ids)
        tasks = tasks.filter(execution_id__in=execution_ids)
    if workflow_names is not None:
        executions = executions.filter(workflow_name__in=list(workflow_names))
    if activity_names is not None:
        tasks = tasks.filter(activity_name__in=list(activity_names))
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


def prune_workers(before: datetime) -> int:
    """Delete the rows of workers that last beat before `before`: every process start adds
    a row, and a live worker beats every few seconds, so these are long gone. Returns how
    many were deleted."""
    deleted, _ = Worker.objects.using(alias()).filter(heartbeat_at__lt=before).delete()
    return deleted


def prune_executions(
    before: datetime, *, batch: int = 500, on_batch: Callable[[int], None] | None = None
) -> int:
    """Delete ended executions (history, activity tasks and signals with them) that finished
    before `before`, `batch` at a time so no transaction grows large. Kept: an execution
    with a child still running, and an ended child whose live (running or parked) parent
    has not received its outcome yet. Returns how many executions were deleted.

    `on_batch(count)` is called after each batch commits, with how many it deleted: a
    command shows its progress with it (the total is not known in advance)."""
    deleted = 0
    executions = WorkflowExecution.objects.using(alias())
    live = [ExecutionStatus.RUNNING, ExecutionStatus.BLOCKED]
    while True:
        live_children = executions.filter(parent_id=OuterRef("pk"), status__in=live)
        awaited = Q(parent__status__in=live, delivered_to_parent=False)
        ids = list(
            executions.filter(status__in=ExecutionStatus.TERMINAL, finished_at__lt=before)
            .exclude(Exists(live_children))
            .exclude(awaited)
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            return deleted
        with transaction.atomic(using=alias()):
            executions.filter(pk__in=ids).delete()
        deleted += len(ids)
        if on_batch is not None:
            on_batch(len(ids))


# -- what the live workers can run ---------------------------------------------------------


def live_workers(*, now: datetime | None = None) -> list[Worker]:
    """Workers not stopped that beat within the last few lease lengths."""
    now = now_or(now)
    since = now - timedelta(seconds=LIVE_LEASES * durable_setting("LEASE_SECONDS"))
    return list(
        Worker.objects.using(alias()).filter(stopped_at__isnull=True, heartbeat_at__gte=since)
    )


def runnable_activities(workers: list[Worker]) -> Q:
    """Activity tasks one of `workers` would claim: it knows the name and serves the queue."""
    runnable = Q(pk__in=[])
    for worker in workers:
        route = Q(activity_name__in=worker.activities)
        if worker.queues:
            route &= Q(queue__in=worker.queues)
        runnable |= route
    return runnable


def known_workflows(workers: list[Worker]) -> set[str]:
    return {name for worker in workers for name in worker.workflows}


def annotate_waiting(executions: QuerySet, *, now: datetime | None = None) -> QuerySet:
    """`executions` annotated with what keeps each one waiting for a worker that knows it:
    `unknown_workflow` (running, and no live worker registered its workflow) and
    `unknown_activity` (the name of an activity waiting to be claimed that no live worker
    can run). One query for the workers; the rest is part of the executions' own query."""
    now = now_or(now)
    workers = live_workers(now=now)
    known = known_workflows(workers)
    running = Q(status=ExecutionStatus.RUNNING)
    unknown = running & ~Q(workflow_name__in=known) if known else running
    claimable = Q(status=ActivityStatus.QUEUED) | Q(
        status=ActivityStatus.RUNNING, lease_until__lt=now
    )
    stuck = (
        ActivityTask.objects.using(alias())
        .filter(claimable, execution=OuterRef("pk"))
        .exclude(runnable_activities(workers))
        .order_by("pk")
        .values("activity_name")[:1]
    )
    return executions.annotate(
        unknown_workflow=ExpressionWrapper(unknown, output_field=BooleanField()),
        unknown_activity=Subquery(stuck),
    )


def unrunnable_work(now: datetime | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Due work that no live worker can run: its code is not deployed on any of them yet.

    Returns `{"workflows": {name: {"count", "oldest_due_at"}}, "activities": {name: {"count",
    "oldest_due_at", "queues"}}}`; an activity counts when no live worker both knows its name
    and serves its queue. Three queries whatever the amount of work.
    """
    now = now_or(now)
    workers = live_workers(now=now)
    unleased = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    workflows = (
        WorkflowExecution.objects.using(alias())
        .filter(unleased, status=ExecutionStatus.RUNNING, wake_at__lte=now)
        .exclude(workflow_name__in=known_workflows(workers))
        .order_by()
        .values("workflow_name")
        .annotate(count=Count("pk"), oldest=Min("wake_at"))
    )
    claimable = Q(status=ActivityStatus.QUEUED, due_at__lte=now) | Q(
        status=ActivityStatus.RUNNING, lease_until__lt=now
    )
    activities = (
        ActivityTask.objects.using(alias())
        .filter(claimable)
        .exclude(runnable_activities(workers))
        .order_by()
        .values("activity_name", "queue")
        .annotate(count=Count("pk"), oldest=Min("due_at"))
    )
    report: dict[str, dict[str, dict[str, Any]]] = {"workflows": {}, "activities": {}}
    for row in workflows:
        report["workflows"][row["workflow_name"]] = {
            "count": row["count"],
            "oldest_due_at": row["oldest"],
        }
    for row in activities:
        entry = report["activities"].setdefault(
            row["activity_name"], {"count": 0, "oldest_due_at": row["oldest"], "queues": []}
        )
        entry["count"] += row["count"]
        entry["oldest_due_at"] = min(entry["oldest_due_at"], row["oldest"])
        entry["queues"] = sorted({*entry["queues"], row["queue"]})
    return report
