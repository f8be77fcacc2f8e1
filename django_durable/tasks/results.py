"""A task's `TaskResult`, read from the execution that runs it and from its activity.

The task's status is its activity's whenever the activity exists (queued: READY, running:
RUNNING, completed: SUCCESSFUL, failed, timed out or canceled: FAILED), and the
execution's before it does (READY while it waits for `run_after`, FAILED if it ended
without running the task: canceled, timed out).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime
from django.utils.module_loading import import_string

from .. import store
from ..constants import ActivityStatus, ExecutionStatus
from ..exceptions import WorkflowNotFound
from ..models import ActivityTask, WorkflowExecution
from .framework import (
    InvalidTask,
    Task,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
)
from .runner import RUN_TASK

ENDED_BADLY = {ExecutionStatus.FAILED, ExecutionStatus.CANCELED, ExecutionStatus.TIMED_OUT}
FAILED_ACTIVITY = {ActivityStatus.FAILED, ActivityStatus.TIMED_OUT, ActivityStatus.CANCELED}


def task_at(job: dict[str, Any]) -> Task:
    """The task the job names, with the options it was enqueued with.

    Raises:
        InvalidTask: nothing at the job's path can be imported, or it is not a task.
    """
    path = job["task"]
    try:
        found = import_string(path)
    except ImportError as exc:
        raise InvalidTask(f"Task {path!r} cannot be imported: {exc}") from exc
    if not isinstance(found, Task):
        raise InvalidTask(f"{path!r} is not a task: decorate it with @task.")
    run_after = parse_datetime(job["run_after"]) if job.get("run_after") else None
    return found.using(
        priority=job["priority"],
        queue_name=job["queue_name"],
        run_after=run_after,
        backend=job["backend"],
    )


def read_task_result(result_id: Any, backend: str, task: Task | None = None) -> TaskResult:
    """The `TaskResult` of the task that execution `result_id` runs for backend `backend`.

    Raises:
        TaskResultDoesNotExist: no execution has that id, or it runs no task of `backend`.
    """
    try:
        execution = store.get_execution(_as_uuid(result_id))
    except WorkflowNotFound:
        raise TaskResultDoesNotExist(result_id) from None
    job = execution.input.get("job") if execution.workflow_name == RUN_TASK else None
    if not isinstance(job, dict) or job.get("backend") != backend:
        raise TaskResultDoesNotExist(result_id)
    activity = store.latest_activity_task(execution.pk, RUN_TASK)
    return task_result_of(execution, activity, task or task_at(job))


def _as_uuid(result_id: Any) -> uuid.UUID | str:
    return result_id if isinstance(result_id, uuid.UUID) else str(result_id)


def task_result_of(
    execution: WorkflowExecution, activity: ActivityTask | None, task: Task
) -> TaskResult:
    """The `TaskResult` that an execution of `run_task` and its activity (if scheduled yet)
    stand for."""
    job = execution.input["job"]
    status, return_value = _status(execution, activity)
    ran = _attempts_record(activity)
    result = TaskResult(
        task=task,
        id=str(execution.pk),
        status=status,
        enqueued_at=execution.created_at,
        started_at=_parsed(ran.get("started_at")) or (activity and activity.started_at),
        last_attempted_at=activity.started_at if activity else None,
        finished_at=_finished_at(execution, activity),
        args=job["args"],
        kwargs=job["kwargs"],
        backend=job["backend"],
        errors=_errors(execution, activity),
        worker_ids=list(ran.get("worker_ids", [])),
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", return_value)
    return result


def _status(execution: WorkflowExecution, activity: ActivityTask | None) -> tuple[str, Any]:
    if activity is not None and activity.status == ActivityStatus.COMPLETED:
        return TaskResultStatus.SUCCESSFUL, activity.result
    if execution.status in ENDED_BADLY or (
        activity is not None and activity.status in FAILED_ACTIVITY
    ):
        return TaskResultStatus.FAILED, None
    if activity is not None and activity.status == ActivityStatus.RUNNING:
        return TaskResultStatus.RUNNING, None
    # Enqueued, waiting for run_after, queued for a worker, or parked (blocked) until
    # compatible code is deployed: all ready to run.
    return TaskResultStatus.READY, None


def _attempts_record(activity: ActivityTask | None) -> dict[str, Any]:
    """What the attempts recorded of themselves (see `runner.run_task_activity`)."""
    details = activity.heartbeat_details if activity is not None else None
    return details if isinstance(details, dict) else {}


def _parsed(moment: Any) -> datetime | None:
    return parse_datetime(moment) if isinstance(moment, str) else None


def _finished_at(execution: WorkflowExecution, activity: ActivityTask | None) -> datetime | None:
    if activity is not None and activity.status in ActivityStatus.TERMINAL:
        return activity.finished_at
    return execution.finished_at if execution.is_terminal else None


def _errors(execution: WorkflowExecution, activity: ActivityTask | None) -> list[TaskError]:
    """The task's error: its last attempt's; else why its execution ended without it."""
    error = activity.error if activity is not None else None
    if not error and execution.status in ENDED_BADLY:
        error = execution.error or _ended_without_error(execution)
    if not error:
        return []
    return [
        TaskError(
            exception_class_path=error.get("type", ""),
            traceback=error.get("traceback") or error.get("message", ""),
        )
    ]


def _ended_without_error(execution: WorkflowExecution) -> dict[str, str]:
    kind = (
        "WorkflowCanceled" if execution.status == ExecutionStatus.CANCELED else "WorkflowTimedOut"
    )
    reason = execution.cancel_reason or f"The execution {execution.status.replace('_', ' ')}."
    return {"type": f"django_durable.exceptions.{kind}", "message": reason}
