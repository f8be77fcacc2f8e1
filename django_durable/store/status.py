"""Reads for the on-call status report (`manage.py durable_status`): executions by status and
workflow, the workers, how late the oldest due work is, and what is parked.

Every read but the counts by status and workflow is bounded by an index or a LIMIT; that one
is a GROUP BY over the whole executions table, acceptable for a command run by a person or a
probe every minute or so, not for a page that many load.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Case, Count, F, Q, QuerySet, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Greatest, Substr

from ..conf import durable_setting
from ..constants import ActivityStatus, ExecutionStatus
from ..models import ActivityTask, Worker, WorkflowExecution
from .db import alias, now_or
from .workers import LIVE_LEASES, unrunnable_work

DUE_COUNT_CAP = 10_000  # due work is counted up to this, so a large backlog costs no more
MESSAGE_CHARS = 300  # of a parked execution's error message, read from the database
# What is shown of a worker: not the (long) lists of the workflow and activity names it runs.
WORKER_FIELDS = ("hostname", "pid", "queues", "started_at", "heartbeat_at", "stopped_at")


def executions_by_workflow() -> dict[str, dict[str, int]]:
    """`{workflow_name: {status: count}}`, every status present for each workflow.

    One GROUP BY over the whole table (no index can answer it): it reads every execution,
    so its cost grows with the table. `durable_prune` keeps the table small.
    """
    statuses = [value for value, _ in ExecutionStatus.CHOICES]
    counts: dict[str, dict[str, int]] = {}
    rows = (
        WorkflowExecution.objects.using(alias())
        .order_by()
        .values("workflow_name", "status")
        .annotate(count=Count("pk"))
    )
    for row in rows:
        by_status = counts.setdefault(row["workflow_name"], dict.fromkeys(statuses, 0))
        by_status[row["status"]] = row["count"]
    return dict(sorted(counts.items()))


def worker_states(*, limit: int, now: datetime | None = None) -> dict[str, Any]:
    """How many workers are alive, stale and stopped, and `limit` of them: the alive ones
    first, then the others, each by their last heartbeat, newest first.

    Alive is what `live_workers` counts: not stopped, and a heartbeat within `LIVE_LEASES`
    lease lengths. Stale: not stopped, but silent for longer (killed, or its host is gone).
    Two queries; the workers table holds one row per worker process ever started.
    """
    now = now_or(now)
    since = live_since(now)
    workers = Worker.objects.using(alias())
    running = Q(stopped_at__isnull=True)
    alive = running & Q(heartbeat_at__gte=since)
    counts = workers.aggregate(
        alive=Count("pk", filter=alive),
        stale=Count("pk", filter=running & Q(heartbeat_at__lt=since)),
        stopped=Count("pk", filter=Q(stopped_at__isnull=False)),
    )
    alive_first = Case(When(alive, then=Value(0)), default=Value(1))
    shown = workers.order_by(alive_first, "-heartbeat_at", "pk").only(*WORKER_FIELDS)[:limit]
    listed = [
        {
            "id": worker.pk,
            "state": worker_state(worker, since),
            "hostname": worker.hostname,
            "pid": worker.pid,
            "queues": worker.queues,
            "started_at": worker.started_at,
            "heartbeat_at": worker.heartbeat_at,
            "stopped_at": worker.stopped_at,
        }
        for worker in shown
    ]
    return {**counts, "listed": listed}


def live_since(now: datetime) -> datetime:
    """The oldest heartbeat of a live worker, as `live_workers` reckons it."""
    return now - timedelta(seconds=LIVE_LEASES * durable_setting("LEASE_SECONDS"))


def worker_state(worker: Worker, since: datetime) -> str:
    if worker.stopped_at is not None:
        return "stopped"
    return "alive" if worker.heartbeat_at >= since else "stale"


def due_work(*, now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """The due work no worker holds, per kind: `{"workflow_tasks": ..., "activities": ...}`,
    each `{"count", "count_capped", "oldest"}`.

    `count` stops at `DUE_COUNT_CAP` (then `count_capped` is true). `oldest` is None or
    `{"name", "execution_id", "due_at", "lag_seconds"}`: the work that has waited longest
    since it became claimable (its due time, or the moment an expired lease ran out, when
    that is later). Six queries, each on an index of the due rows.
    """
    now = now_or(now)
    return {"workflow_tasks": _due_workflow_tasks(now), "activities": _due_activities(now)}


def _due_workflow_tasks(now: datetime) -> dict[str, Any]:
    due = WorkflowExecution.objects.using(alias()).filter(
        status=ExecutionStatus.RUNNING, wake_at__lte=now
    )
    workflow_fields = {"name": F("workflow_name"), "execution_id": F("pk")}
    never_leased = (
        due.filter(lease_until__isnull=True)
        .order_by("wake_at")
        .values(since=F("wake_at"), **workflow_fields)[:1]
    )
    lease_expired = (
        due.filter(lease_until__lt=now)
        .annotate(since=Greatest("wake_at", "lease_until"))
        .order_by("since")
        .values("since", **workflow_fields)[:1]
    )
    unclaimed = due.filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
    return _due_summary(unclaimed, [*never_leased, *lease_expired], now)


def _due_activities(now: datetime) -> dict[str, Any]:
    tasks = ActivityTask.objects.using(alias())
    queued = Q(status=ActivityStatus.QUEUED, due_at__lte=now)
    lease_expired = Q(status=ActivityStatus.RUNNING, lease_until__lt=now)
    candidates = [
        *tasks.filter(queued)
        .order_by("due_at")
        .values("execution_id", name=F("activity_name"), since=F("due_at"))[:1],
        *tasks.filter(lease_expired)
        .order_by("lease_until")
        .values("execution_id", name=F("activity_name"), since=F("lease_until"))[:1],
    ]
    return _due_summary(tasks.filter(queued | lease_expired), candidates, now)


def _due_summary(unclaimed: QuerySet, candidates: list[dict[str, Any]], now: datetime) -> dict:
    """`candidates` are rows `{"name", "execution_id", "since"}`: the oldest of each way work
    becomes claimable; the one that became claimable first is the oldest."""
    count = unclaimed.order_by().values("pk")[: DUE_COUNT_CAP + 1].count()
    summary: dict[str, Any] = {
        "count": min(count, DUE_COUNT_CAP),
        "count_capped": count > DUE_COUNT_CAP,
        "oldest": None,
    }
    if candidates:
        oldest = min(candidates, key=lambda row: row["since"])
        summary["oldest"] = {
            "name": oldest["name"],
            "execution_id": oldest["execution_id"],
            "due_at": oldest["since"],
            "lag_seconds": max(0.0, (now - oldest["since"]).total_seconds()),
        }
    return summary


def parked_executions(*, limit: int) -> dict[str, Any]:
    """How many executions are parked (blocked), and the `limit` oldest with their reason:
    `{"count", "listed": [{"execution_id", "workflow_name", "created_at", "error_type",
    "message"}]}`, `message` being the first line of the error's message.

    Two queries on the status index; only the error's type and the start of its message
    are read, never the stored traceback.
    """
    parked = WorkflowExecution.objects.using(alias()).filter(status=ExecutionStatus.BLOCKED)
    rows = (
        parked.order_by("created_at")
        .annotate(
            error_type=KeyTextTransform("type", "error"),
            error_message=Substr(KeyTextTransform("message", "error"), 1, MESSAGE_CHARS),
        )
        .values("pk", "workflow_name", "created_at", "error_type", "error_message")[:limit]
    )
    listed = [
        {
            "execution_id": row["pk"],
            "workflow_name": row["workflow_name"],
            "created_at": row["created_at"],
            "error_type": row["error_type"] or "",
            "message": first_line(row["error_message"] or ""),
        }
        for row in rows
    ]
    return {"count": parked.count(), "listed": listed}


def first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0] if stripped else ""


def status_report(*, limit: int = 10, now: datetime | None = None) -> dict[str, Any]:
    """Everything `durable_status` shows, read at one moment `now`: `{"now", "executions",
    "workers", "due", "unrunnable", "parked"}` (see each part's function; `unrunnable` is
    `unrunnable_work`). `limit` bounds the workers and parked executions listed."""
    now = now_or(now)
    return {
        "now": now,
        "executions": executions_by_workflow(),
        "workers": worker_states(limit=limit, now=now),
        "due": due_work(now=now),
        "unrunnable": unrunnable_work(now=now),
        "parked": parked_executions(limit=limit),
    }
