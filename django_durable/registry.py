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
class RetryPolicy:
    """How a failed activity attempt is retried.

    The n-th retry waits `initial_interval * backoff_coefficient ** (n - 1)` seconds, at most
    `maximum_interval`, on a durable timer. `maximum_attempts` counts the first attempt too
    (0: no limit). An error whose type (qualified, like "myapp.errors.CardDeclined", or
    bare, like "CardDeclined") is in `non_retryable_errors` fails at once.
    """

    initial_interval: float = 1.0
    backoff_coefficient: float = 2.0
    maximum_interval: float | None = 100.0
    maximum_attempts: int = 3
    non_retryable_errors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.initial_interval < 0 or self.backoff_coefficient < 1:
            raise ImproperlyConfigured(
                "RetryPolicy needs initial_interval >= 0 and backoff_coefficient >= 1."
            )
        if self.maximum_attempts < 0:
            raise ImproperlyConfigured("RetryPolicy.maximum_attempts must be 0 (no limit) or more.")
        object.__setattr__(self, "non_retryable_errors", tuple(self.non_retryable_errors))

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        delay = self.initial_interval * self.backoff_coefficient ** (attempt - 1)
        return min(delay, self.maximum_interval) if self.maximum_interval else delay

    def retries(self, error_type: str, attempt: int) -> bool:
        """Whether an attempt that failed with `error_type` is tried again."""
        bare = error_type.rsplit(".", 1)[-1]
        if error_type in self.non_retryable_errors or bare in self.non_retryable_errors:
            return False
        return self.maximum_attempts == 0 or attempt < self.maximum_attempts

    def to_dict(self) -> dict[str, Any]:
        return {
            "initial_interval": self.initial_interval,
            "backoff_coefficient": self.backoff_coefficient,
            "maximum_interval": self.maximum_interval,
            "maximum_attempts": self.maximum_attempts,
            "non_retryable_errors": list(self.non_retryable_errors),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RetryPolicy:
        return cls(
            **{**values, "non_retryable_errors": tuple(values.get("non_retryable_errors", ()))}
        )


ACTIVITY_TIMEOUTS = ("start_to_close_timeout", "schedule_to_close_timeout", "heartbeat_timeout")


@dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    fn: Callable[..., Any]
    is_async: bool
    timeout: float | None = None


@dataclass(frozen=True)
class ActivityDefinition:
    name: str
    fn: Callable[..., Any]
    is_async: bool
    queue: str = "default"
    retry_policy: RetryPolicy | None = None
    start_to_close_timeout: float | None = None
    schedule_to_close_timeout: float | None = None
    heartbeat_timeout: float | None = None
    transactional: bool = False


def _origin(fn: Callable) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


MAX_DURATION_SECONDS = 100 * 365 * 86400
"""The longest timer or timeout anything durable may ask for: 100 years of 365 days.

A bound keeps every fire time and deadline a date that Python and the database can hold.
"""


def _check_seconds(option: str, value: float | None) -> None:
    if value is None:
        return
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not 0 < value <= MAX_DURATION_SECONDS
    ):
        raise ImproperlyConfigured(
            f"{option} must be a positive number of seconds, at most {MAX_DURATION_SECONDS} "
            f"(100 years), not {value!r}."
        )


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

    def workflow(
        self, name: str | None = None, *, timeout: float | None = None
    ) -> Callable[[Callable], Callable]:
        """Register a workflow: an `async def` or `def` taking the context first.

        Args:
            name: the durable name; by default `"<app_label>.<function name>"`.
            timeout: seconds after its start at which an execution times out (children,
                pending activities and timers are canceled); a start may override it.
        """
        _check_seconds("timeout", timeout)

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
                timeout=timeout,
            )
            self._add(self.workflows, definition, "workflow")
            return fn

        return decorator

    def activity(
        self,
        name: str | None = None,
        *,
        queue: str = "default",
        retry_policy: RetryPolicy | None = None,
        start_to_close_timeout: float | None = None,
        schedule_to_close_timeout: float | None = None,
        heartbeat_timeout: float | None = None,
        transactional: bool = False,
    ) -> Callable[[Callable], Callable]:
        """Register an activity: a `def` or `async def` whose side effects run once per attempt.

        Args:
            name: the durable name; by default `"<app_label>.<function name>"`.
            queue: the queue whose workers run it.
            retry_policy: how failed attempts are retried; by default `DURABLE["RETRY_POLICY"]`.
            start_to_close_timeout: seconds one attempt may run before its process is stopped.
            schedule_to_close_timeout: seconds from scheduling to the end, retries included.
            heartbeat_timeout: seconds without `activity.heartbeat()` after which the attempt
                is stopped.
            transactional: run a plain `def` body inside the transaction that records its
                completion, so its database writes happen exactly once.
        """
        for option, value in (
            ("start_to_close_timeout", start_to_close_timeout),
            ("schedule_to_close_timeout", schedule_to_close_timeout),
            ("heartbeat_timeout", heartbeat_timeout),
        ):
            _check_seconds(option, value)
        if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
            raise ImproperlyConfigured("retry_policy must be a django_durable.RetryPolicy.")

        def decorator(fn: Callable) -> Callable:
            if not callable(fn):
                raise ImproperlyConfigured(f"@register.activity() needs a function, not {fn!r}.")
            if transactional and inspect.iscoroutinefunction(fn):
                raise ImproperlyConfigured(
                    f"Activity {_origin(fn)} cannot be transactional: Django cannot run an "
                    f"async def inside transaction.atomic(). Make it a plain def."
                )
            definition = ActivityDefinition(
                name=name or _default_name(fn),
                fn=fn,
                is_async=inspect.iscoroutinefunction(fn),
                queue=queue,
                retry_policy=retry_policy,
                start_to_close_timeout=start_to_close_timeout,
                schedule_to_close_timeout=schedule_to_close_timeout,
                heartbeat_timeout=heartbeat_timeout,
                transactional=transactional,
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
