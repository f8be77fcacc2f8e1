"""Django's tasks framework, from wherever this Django has it.

Django 6.0 and later ship it as `django.tasks`; on Django 5.2 the `django-tasks` package
backports it as `django_tasks`. Everything else in this package imports the framework's
names from here, so the choice is made once.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

try:  # Django 6.0 or later
    from django.tasks import Task, TaskContext, TaskResult, TaskResultStatus, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json

    SOURCE = "django.tasks"
except ImportError:
    try:  # the backport
        from django_tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import Task, TaskError
        from django_tasks.exceptions import InvalidTaskError as InvalidTask
        from django_tasks.exceptions import TaskResultDoesNotExist
        from django_tasks.signals import task_enqueued, task_finished, task_started
        from django_tasks.utils import normalize_json

        SOURCE = "django_tasks"
    except ImportError as missing:
        raise ImproperlyConfigured(
            "django_durable.tasks.DurableBackend needs Django's tasks framework: Django 6.0 "
            "or later has it; on Django < 6.0 run `pip install django-tasks` "
            "(or `pip install django-durable[tasks]`)."
        ) from missing

__all__ = [
    "SOURCE",
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "normalize_json",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]
