"""The built-in workflow and activity that run one Django task durably.

`DurableBackend.enqueue` starts the workflow `django_durable.run_task` with the task's
"job" (its import path, arguments and options). The workflow sleeps on a durable timer
until `run_after`, then runs the activity `django_durable.run_task` on the task's queue;
the activity imports the task and calls it. Registered by django-durable itself (through
its `durable_workflows` and `durable_activities` modules), so every worker runs tasks.

This module imports neither Django's tasks framework nor the database: the framework is
loaded only when a task runs, so a project without it can still start its workers.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from typing import Any

from .. import activity
from ..registry import RetryPolicy, register

RUN_TASK = "django_durable.run_task"
"""The name of both the workflow and the activity that run a task."""

RUN_ONCE = RetryPolicy(maximum_attempts=1)
"""Django's tasks have no retries: a task that raises is FAILED at its first error."""


@register.workflow(name=RUN_TASK)
async def run_task(ctx, job: dict[str, Any]) -> Any:
    """Wait until the job's `run_after` (if any), then run the task on its queue.

    Returns the task's return value; fails with the activity's `ActivityError` when the
    task raised.
    """
    if job.get("run_after"):
        delay = (datetime.fromisoformat(job["run_after"]) - ctx.now()).total_seconds()
        if delay > 0:
            await ctx.sleep(delay)
    return await ctx.run_activity(RUN_TASK, job, queue=job["queue_name"])


def attempt_owner() -> str:
    """Who runs this attempt, for `TaskResult.worker_ids`: the host and the process id."""
    return f"{socket.gethostname()}-{os.getpid()}"


@register.activity(name=RUN_TASK, retry_policy=RUN_ONCE)
def run_task_activity(job: dict[str, Any]) -> Any:
    """Run one attempt of the task the job names, and return its return value.

    The attempt first records who runs it (in its heartbeat details, which outlive the
    attempt), so that `TaskResult.worker_ids` and `attempts` count every attempt; then the
    task's `TaskResult` is read as the backend reports it (RUNNING) to build the
    `TaskContext` and the `task_started` / `task_finished` signals.
    """
    from .attempts import run_attempt  # the framework is needed from here on

    return run_attempt(job, activity.info(), attempt_owner())
