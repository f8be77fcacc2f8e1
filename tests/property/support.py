"""Helpers of the property suites: Hypothesis settings, the database's state, calling the API.

Each test runs a bounded number of examples against the real database (SQLite or
PostgreSQL, like the integration ring). DURABLE_PROPERTY_SCALE=10 runs ten times as many.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from django_durable import DurableError
from django_durable.models import ActivityTask, HistoryEvent, PendingSignal, WorkflowExecution

SCALE = int(os.environ.get("DURABLE_PROPERTY_SCALE", "1"))

BASE = settings(
    deadline=None,  # a database round trip has no fixed duration
    database=None,  # no .hypothesis/ directory in the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def examples(count: int) -> settings:
    """Hypothesis settings for a test of `count` examples (times DURABLE_PROPERTY_SCALE)."""
    return settings(BASE, max_examples=count * SCALE)


def database_state() -> tuple:
    """Every row count, and the columns of each execution a signal or cancel would change."""
    executions = WorkflowExecution.objects.order_by("pk").values_list(
        "pk", "status", "cancel_requested", "cancel_reason", "inbox_version", "wake_at"
    )
    return (
        list(executions),
        HistoryEvent.objects.count(),
        PendingSignal.objects.count(),
        ActivityTask.objects.count(),
    )


def invoke(form: str, call: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the API as sync code does, or await it inside a running event loop."""
    if form == "sync":
        return call(*args, **kwargs)

    async def awaited() -> Any:
        return await call(*args, **kwargs)

    return asyncio.run(awaited())


def refused(
    action: Callable[[], Any], *expected: type[DurableError], message: str = ""
) -> DurableError:
    """Run `action`, which must raise one of the `expected` errors, and change nothing.

    Anything else (a raw `DataError`, `RecursionError`, `OverflowError`, ...) propagates
    and fails the test with its own traceback.
    """
    before = database_state()
    with pytest.raises(DurableError) as caught:
        action()
    error = caught.value
    assert isinstance(error, expected), f"{type(error).__name__}: {error}"
    assert message in str(error)
    assert str(error).strip(), "an error must say what is wrong"
    assert database_state() == before, "a refused call left rows behind"
    return error
