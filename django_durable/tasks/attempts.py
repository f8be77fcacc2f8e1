"""One attempt of a Django task, inside the activity `django_durable.run_task`."""

from __future__ import annotations

from traceback import format_exception
from typing import Any

from django.utils import timezone

from .. import activity
from ..activity import ActivityInfo
from .framework import (
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultStatus,
    normalize_json,
    task_finished,
    task_started,
)
from .results import read_task_result


def run_attempt(job: dict[str, Any], info: ActivityInfo, owner: str) -> Any:
    """Call the job's task and return its JSON-normalized return value, as Django's own
    backends do; send `task_started` before and `task_finished` after (from inside the
    exception handler when it raised, then re-raise: the attempt fails with that error).
    """
    result = _started(read_task_result(info.execution_id, job["backend"]), info, owner)
    task = result.task
    sender = type(task.get_backend())  # as Django's backends send them: their own class
    task_started.send(sender=sender, task_result=result)
    try:
        if task.takes_context:
            value = task.call(TaskContext(task_result=result), *result.args, **result.kwargs)
        else:
            value = task.call(*result.args, **result.kwargs)
        value = normalize_json(value)
    except BaseException as exc:
        _set(result, status=TaskResultStatus.FAILED, finished_at=timezone.now())
        kind = type(exc)
        result.errors.append(
            TaskError(
                exception_class_path=f"{kind.__module__}.{kind.__qualname__}",
                traceback="".join(format_exception(exc)),
            )
        )
        task_finished.send(sender=sender, task_result=result)
        raise
    _set(result, status=TaskResultStatus.SUCCESSFUL, finished_at=timezone.now())
    _set(result, _return_value=value)
    task_finished.send(sender=sender, task_result=result)
    return value


def _started(result: TaskResult, info: ActivityInfo, owner: str) -> TaskResult:
    """`result` with this attempt counted: its owner added to `worker_ids` (so that
    `TaskContext.attempt` is this attempt's number), recorded as the activity's heartbeat
    details so that later reads, and later attempts, see it too."""
    earlier = info.heartbeat_details if isinstance(info.heartbeat_details, dict) else {}
    worker_ids = [*earlier.get("worker_ids", []), owner]
    first_start = result.started_at  # the first attempt's, once recorded; else this one's
    activity.heartbeat({"worker_ids": worker_ids, "started_at": first_start.isoformat()})
    _set(result, worker_ids=worker_ids)
    return result


def _set(result: TaskResult, **changes: Any) -> None:
    """Change a frozen `TaskResult` in place, as Django's own backends do."""
    for name, value in changes.items():
        object.__setattr__(result, name, value)
