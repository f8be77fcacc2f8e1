"""`DurableBackend`: Django's tasks framework, run by django-durable's workers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.core import checks
from django.db import transaction
from django.utils import timezone

from .. import store
from ..api import start_workflow
from ..models import ActivityTask
from ..payloads import to_json_value
from ..registry import MAX_DURATION_SECONDS
from ..store.db import alias
from .framework import BaseTaskBackend, InvalidTask, Task, TaskResult, normalize_json, task_enqueued
from .results import read_task_result, task_result_of
from .runner import RUN_TASK

MAX_QUEUE_LENGTH = ActivityTask._meta.get_field("queue").max_length


class DurableBackend(BaseTaskBackend):
    """Each enqueued task is a durable execution of the workflow `django_durable.run_task`,
    which runs the task once in an activity on the task's queue.

    `TASKS = {"default": {"BACKEND": "django_durable.tasks.DurableBackend"}}`; `QUEUES`
    lists the queue names tasks may use (Django's default: `["default"]`), each served by
    workers started with `--queue NAME` (or by workers that serve every queue).
    """

    supports_defer = True
    """`run_after` is kept by a durable timer: no worker slot waits meanwhile."""

    supports_async_task = True
    """An `async def` task runs in its own event loop, in an activity process's slot."""

    supports_get_result = True
    """Results are read from the database, so from any thread, process or host."""

    supports_priority = False
    """No priority order: due work runs oldest first, so only the default priority (0) is
    accepted."""

    def validate_task(self, task: Task) -> None:
        """Django's checks, and what the engine can store: a queue name of at most 100
        characters, a `run_after` at most 100 years ahead."""
        super().validate_task(task)
        if not 0 < len(task.queue_name) <= MAX_QUEUE_LENGTH:
            raise InvalidTask(
                f"Queue name must be 1 to {MAX_QUEUE_LENGTH} characters long, "
                f"not {len(task.queue_name)}."
            )
        if task.run_after is not None and _aware(task.run_after) - timezone.now() > timedelta(
            seconds=MAX_DURATION_SECONDS
        ):
            raise InvalidTask("run_after must be at most 100 years ahead.")

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        """Start the task's execution and return its READY result.

        Inside the caller's `transaction.atomic()` on the engine's database the start is
        part of that transaction: it commits with it or is rolled back with it, and
        `task_enqueued` is sent once it is committed.

        Raises:
            InvalidTask: the task is not valid for this backend.
            TypeError, ValueError: an argument is of a type JSON does not have
                (`normalize_json`'s message, as Django's own backends raise).
            PayloadError: the arguments are not valid JSON (NaN, infinity), are over
                `DURABLE["MAX_PAYLOAD_BYTES"]`, or hold what the database cannot store.
        """
        self.validate_task(task)
        arguments = to_json_value(
            {"args": normalize_json(args), "kwargs": normalize_json(kwargs)},
            f"The arguments of task {task.module_path!r}",
        )
        job = {
            "task": task.module_path,
            **arguments,
            "queue_name": task.queue_name,
            "priority": task.priority,
            "run_after": task.run_after and _aware(task.run_after).isoformat(),
            "backend": self.alias,
        }
        # The plain call even inside an event loop, where Django refuses the ORM with its
        # own message (use aenqueue there), rather than a coroutine to await.
        execution_id = start_workflow.__wrapped__(RUN_TASK, job=job)
        result = task_result_of(store.get_execution(execution_id), None, task)
        transaction.on_commit(
            partial(task_enqueued.send, type(self), task_result=result), using=alias()
        )
        return result

    def get_result(self, result_id: str) -> TaskResult:
        """The task's result as it stands now.

        Raises:
            TaskResultDoesNotExist: no task of this backend has that id.
            InvalidTask: the task's function can no longer be imported.
        """
        return read_task_result(result_id, self.alias)

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        yield from super().check(**kwargs)
        for queue in sorted(self.queues):
            if not 0 < len(queue) <= MAX_QUEUE_LENGTH:
                yield checks.Error(
                    f"The task backend {self.alias!r} lists a queue name of {len(queue)} "
                    f"characters; queue names are 1 to {MAX_QUEUE_LENGTH} characters long.",
                    id="django_durable.E101",
                )


def _aware(moment: datetime) -> datetime:
    """A naive `run_after` (USE_TZ = False) is in the current time zone."""
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment
