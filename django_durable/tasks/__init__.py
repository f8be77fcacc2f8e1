"""A backend for Django's tasks framework: every `@task` runs as a durable execution.

`TASKS = {"default": {"BACKEND": "django_durable.tasks.DurableBackend"}}`. The framework
is `django.tasks` on Django 6.0 and later, and the `django-tasks` package before; the
backend is loaded on first use, so this package imports without either.
"""

from importlib import import_module

__all__ = ["DurableBackend"]


def __getattr__(name: str):
    if name != "DurableBackend":
        raise AttributeError(f"module 'django_durable.tasks' has no attribute {name!r}")
    value = import_module("django_durable.tasks.backend").DurableBackend
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
