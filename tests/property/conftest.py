"""Fixtures of the property suites: an echo workflow and a live execution to aim at."""

from __future__ import annotations

from typing import Any

import pytest

from django_durable import start_workflow
from django_durable.registry import WorkflowDefinition, register

ECHO = "property.echo"


async def echo(ctx, **inputs: Any) -> dict:
    return inputs


@pytest.fixture
def echo_workflow(monkeypatch) -> str:
    """A workflow that takes any keyword arguments, registered for this test only."""
    monkeypatch.setitem(register.workflows, ECHO, WorkflowDefinition(ECHO, echo, True))
    return ECHO


@pytest.fixture
def running_execution(transactional_db):
    """An execution that waits for a signal: a live target for signals, cancels and waits."""
    return start_workflow("testapp.collect_signals", count=1)
