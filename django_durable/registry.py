"""Registration of workflows and activities under stable names, and their discovery.

A definition is checked once, when it is decorated, so a mistake fails at import time
rather than in the worker. No database access here.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import autodiscover_modules

from .exceptions import ActivityNotFound, WorkflowNotFound

DISCOVERED_MODULES = ("durable_workflows", "durable_activities")


@dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    fn: Callable[..., Any]
    is_async: bool


@dataclass(frozen=True)
class ActivityDefinition:
    name: str
    fn: Callable[..., Any]
    is_async: bool
    queue: str


def _origin(fn: Callable) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _default_name(fn: Callable) -> str:
    app_config = apps.get_containing_app_config(fn.__module__)
    if app_config is None:
        raise ImproperlyConfigured(
            f"{_origin(fn)} is not in an installed app, so it has no default durable name: "
            f"pass name= to the decorator."
        )
    return f"{app_config.label}.{fn.__name__}"


class Registry:
    """Workflows and activities by name; one instance, `register`, serves the project."""

    def __init__(self) -> None:
        self.workflows: dict[str, WorkflowDefinition] = {}
        self.activities: dict[str, ActivityDefinition] = {}

    def workflow(self, name: str | None = None) -> Callable[[Callable], Callable]:
        """Register a workflow: an `async def` or `def` taking the context first.

        Args:
            name: the durable name; by default `"<app_label>.<function name>"`.
        """

        def decorator(fn: Callable) -> Callable:
            if not callable(fn):
                raise ImproperlyConfigured(f"@register.workflow() needs a function, not {fn!r}.")
            if not list(inspect.signature(fn).parameters):
                raise ImproperlyConfigured(
                    f"Workflow {_origin(fn)} must take the workflow context as its first argument."
                )
            definition = WorkflowDefinition(
                name=name or _default_name(fn),
                fn=fn,
                is_async=inspect.iscoroutinefunction(fn),
            )
            self._add(self.workflows, definition, "workflow")
            return fn

        return decorator

    def activity(
        self, name: str | None = None, *, queue: str = "default"
    ) -> Callable[[Callable], Callable]:
        """Register an activity: a `def` or `async def` whose side effects run once per attempt.

        Args:
            name: the durable name; by default `"<app_label>.<function name>"`.
            queue: the queue whose workers run it.
        """

        def decorator(fn: Callable) -> Callable:
            if not callable(fn):
                raise ImproperlyConfigured(f"@register.activity() needs a function, not {fn!r}.")
            definition = ActivityDefinition(
                name=name or _default_name(fn),
                fn=fn,
                is_async=inspect.iscoroutinefunction(fn),
                queue=queue,
            )
            self._add(self.activities, definition, "activity")
            return fn

        return decorator

    @staticmethod
    def _add(table: dict, definition, kind: str) -> None:
        existing = table.get(definition.name)
        if existing is not None and _origin(existing.fn) != _origin(definition.fn):
            raise ImproperlyConfigured(
                f"Two {kind} definitions are named {definition.name!r}: "
                f"{_origin(existing.fn)} and {_origin(definition.fn)}. Pass name= to one of them."
            )
        table[definition.name] = definition

    def get_workflow(self, workflow: str | Callable) -> WorkflowDefinition:
        """Return the definition for a workflow name or function; `WorkflowNotFound` otherwise."""
        return self._get(self.workflows, workflow, "workflow", WorkflowNotFound)

    def get_activity(self, activity: str | Callable) -> ActivityDefinition:
        """Return the definition for an activity name or function; `ActivityNotFound` otherwise."""
        return self._get(self.activities, activity, "activity", ActivityNotFound)

    @staticmethod
    def _get(table: dict, key: str | Callable, kind: str, error: type[Exception]):
        if callable(key):
            for definition in table.values():
                if definition.fn is key:
                    return definition
            raise error(
                f"{_origin(key)} is not a registered {kind}: decorate it with @register.{kind}()."
            )
        try:
            return table[key]
        except KeyError:
            close = difflib.get_close_matches(str(key), list(table), n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise error(f"No {kind} is registered as {key!r}.{hint}") from None


register = Registry()


def autodiscover() -> None:
    """Import the `durable_workflows` and `durable_activities` module of every installed app."""
    autodiscover_modules(*DISCOVERED_MODULES)
