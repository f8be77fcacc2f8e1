"""A batch of workflows through the workers, drained or live, and the figures it yields.

drain: the warmed-up workers are paused (SIGSTOP), every workflow is started (in bulk),
the workers resume (SIGCONT) and the clock runs from that moment to the last `finished_at`.
live: the workers run while one client starts the workflows one by one; the clock runs
from the first start to the last `finished_at`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Max
from django.utils import timezone

from .checks import check_activities, check_results
from .figures import distribution_ms, rate
from .pgstats import Window
from .procstats import GroupUsage
from .session import Session
from .worker_process import WorkerGroup


@dataclass
class Batch:
    """What a batch left behind, for the figures and for the shape's own checks."""

    workflow: str
    ids: list
    since: Any  # datetime: every execution of the batch was created at or after it
    began: Any  # datetime: the clock's start (the resumption, or the first start)
    start_seconds: float
    wall_seconds: float
    activities: int
    rows: list[dict]
    window: Window
    usage_before: GroupUsage
    usage_after: GroupUsage


def run_batch(
    session: Session,
    group: WorkerGroup,
    workflow: str,
    inputs: list[dict],
    expected: list,
    *,
    activities_each: int,
    mode: str = "drain",
) -> Batch:
    """Run `inputs` through `workflow`; check each result against `expected` (same order)
    and each execution's activities; fail on any difference."""
    window = Window(session.pg)
    session.quiet(group)
    since = timezone.now()
    with window.measuring():
        if mode == "drain":
            with window.counter.exempt():
                ids, start_seconds = session.start_many(workflow, inputs)
            usage_before = group.usage()
            began = timezone.now()
            group.resume()
        else:
            group.resume()
            usage_before = group.usage()
            began = timezone.now()
            with window.counter.exempt():
                ids, start_seconds = session.start_one_by_one(workflow, inputs)
        session.wait_ended(group, workflow, since, len(ids))
        usage_after = group.usage()
        session.quiet(group)
    group.resume()
    executions = session.executions(workflow, since)
    rows = list(executions.values("pk", "status", "result", "error", "created_at", "finished_at"))
    label = f"{workflow} ({mode})"
    check_results(label, rows, dict(zip(ids, expected, strict=True)))
    activities = check_activities(label, executions, ids, activities_each)
    last = executions.aggregate(at=Max("finished_at"))["at"]
    return Batch(
        workflow=workflow,
        ids=ids,
        since=since,
        began=began,
        start_seconds=start_seconds,
        wall_seconds=(last - began).total_seconds(),
        activities=activities,
        rows=rows,
        window=window,
        usage_before=usage_before,
        usage_after=usage_after,
    )


def batch_figures(batch: Batch, mode: str) -> dict:
    """workflows/s, activities/s, start to finish, PostgreSQL counts, CPU and memory."""
    count = len(batch.ids)
    to_finish = [
        (row["finished_at"] - max(row["created_at"], batch.began)).total_seconds()
        for row in batch.rows
    ]
    cpu = batch.usage_after.cpu_seconds - batch.usage_before.cpu_seconds
    pg = batch.window.per(count)
    return {
        "mode": mode,
        "workflows": count,
        "activities": batch.activities,
        "start_seconds": round(batch.start_seconds, 3),
        "starts_per_s": rate(count, batch.start_seconds),
        "wall_seconds": round(batch.wall_seconds, 3),
        "workflows_per_s": rate(count, batch.wall_seconds),
        "activities_per_s": rate(batch.activities, batch.wall_seconds),
        "start_to_finish_ms": distribution_ms(to_finish),
        "pg_transactions_per_workflow": pg["transactions"],
        "pg_statements_per_workflow": pg["statements"],
        "worker_cpu_seconds_per_1000_workflows": round(cpu / count * 1000, 3),
        "worker_rss_mb": round(batch.usage_after.worker_rss_mb, 1),
        "activity_processes_rss_mb": round(batch.usage_after.children_rss_mb, 1),
    }
