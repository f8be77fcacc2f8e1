"""`@task` functions for tests/integration/test_tasks_backend.py.

Decorated at import, when the settings' backend validates them (Django's default, the
immediate one, or a `DurableBackend`: each must pass both); the tests enqueue them on a
`DurableBackend` through `override_settings`.
"""

import asyncio

try:
    from django.tasks import task
except ImportError:  # Django < 6.0: the django-tasks backport
    from django_tasks import task

CALLS: list = []


class TaskBoom(Exception):
    """Raised by `explode`, so a test can find its class path in the result's errors."""


@task
def add(a, b):
    CALLS.append(("add", a, b))
    return a + b


@task()
async def add_async(a, b):
    await asyncio.sleep(0)
    return a + b


@task
def explode(message):
    raise TaskBoom(message)


@task
def pair(a, b):
    return (a, b)  # a tuple: normalized to a list, as Django's own backends do


@task
def unstorable():
    return object()


@task(takes_context=True)
def with_context(context, label):
    result = context.task_result
    return {
        "label": label,
        "attempt": context.attempt,
        "id": result.id,
        "status": str(result.status),
        "args": result.args,
        "kwargs": result.kwargs,
        "worker_ids": result.worker_ids,
    }


def not_a_task():
    return "plain"
