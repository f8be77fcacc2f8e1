"""Replaying stored histories against the code deployed now, to catch non-determinism in CI.

```python
from django_durable.testing import export_history, replay

export = export_history(execution_id)          # JSON-able: save it as a fixture
result = replay(export, "shop.order")          # NonDeterminismError if the code changed
assert result.status == "completed"
```

Nothing here writes to the database and no activity runs: recorded outcomes are fed back.
"""

from __future__ import annotations

import inspect
import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async

from . import store
from .constants import EventKind, ExecutionStatus
from .exceptions import WorkflowNotFound
from .models import WorkflowExecution
from .registry import WorkflowDefinition, register
from .runtime import Event, WorkflowInfo
from .runtime import replay as replay_events

REPLAY_EXECUTION_ID = uuid.UUID(int=0)
"""The execution id used when a history comes without one (it seeds `ctx.random()`)."""

_COMPLETION_STATUS = {
    EventKind.WORKFLOW_COMPLETED: ExecutionStatus.COMPLETED,
    EventKind.WORKFLOW_FAILED: ExecutionStatus.FAILED,
    EventKind.WORKFLOW_CANCELED: ExecutionStatus.CANCELED,
}


@dataclass(frozen=True)
class ReplayResult:
    """Where the workflow stands after re-living its history with the current code.

    Attributes:
        status: "completed", "failed", "canceled", "timed_out" (an `ExecutionStatus`), or
            "running" when history stops at a wait.
        result: the workflow's result, when it completed.
        error: type, message and traceback, when it failed.
        waiting_on: what a running workflow waits for, in words ("signal 'approve'").
        events: how many history events were replayed.
    """

    status: str
    result: Any = None
    error: dict[str, str] | None = None
    waiting_on: str = "nothing"
    events: int = 0

    @property
    def completed(self) -> bool:
        """True when the workflow returned a result."""
        return self.status == ExecutionStatus.COMPLETED

    def describe(self) -> str:
        """The outcome in a few words, e.g. "running (waiting on activity 'shop.charge')"."""
        if self.status == ExecutionStatus.RUNNING:
            return f"running (waiting on {self.waiting_on})"
        if self.status == ExecutionStatus.FAILED and self.error:
            message = " ".join(str(self.error.get("message", "")).split())
            return f"failed ({self.error.get('type', '')}: {message})"
        return self.status


@dataclass(frozen=True)
class _History:
    events: list[Event]
    workflow_name: str | None = None
    execution_id: uuid.UUID | None = None
    inputs: dict[str, Any] | None = None


def _event(item: Event | Mapping[str, Any], position: int) -> Event:
    if isinstance(item, Event):
        return item
    if not isinstance(item, Mapping) or not isinstance(item.get("kind"), str):
        raise ValueError(
            f"History event #{position} must be an Event or a dict with a 'kind', not {item!r}."
        )
    data, name, seq = item.get("data") or {}, item.get("name") or "", item.get("command_seq")
    if not isinstance(data, Mapping) or not isinstance(name, str):
        raise ValueError(
            f"History event #{position} needs a dict 'data' and a text 'name', not {item!r}."
        )
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
        raise ValueError(f"History event #{position} has a 'command_seq' of {seq!r}, not a number.")
    return Event(kind=item["kind"], command_seq=seq, name=name, data=dict(data))


def _events(items: Any) -> list[Event]:
    if not isinstance(items, list | tuple):
        raise ValueError(f"A history's events are a list, not {type(items).__name__}.")
    return [_event(item, position) for position, item in enumerate(items, start=1)]


def _from_database(execution: WorkflowExecution | uuid.UUID | str) -> _History:
    if not isinstance(execution, WorkflowExecution):
        execution = store.get_execution(execution)
    return _History(
        events=store.load_history(execution.pk),
        workflow_name=execution.workflow_name,
        execution_id=execution.pk,
        inputs=execution.input,
    )


def _from_export(export: Mapping[str, Any]) -> _History:
    if "events" not in export:
        raise ValueError("An exported history is a dict with an 'events' list.")
    execution_id, workflow_name = export.get("execution_id"), export.get("workflow_name")
    if workflow_name is not None and not isinstance(workflow_name, str):
        raise ValueError(f"An exported history's 'workflow_name' is text, not {workflow_name!r}.")
    if not isinstance(export.get("input", {}), Mapping | None):
        raise ValueError("An exported history's 'input' is a dict of keyword arguments.")
    try:
        execution_id = uuid.UUID(str(execution_id)) if execution_id else None
    except ValueError:
        raise ValueError(
            f"An exported history's 'execution_id' is a UUID, not {execution_id!r}."
        ) from None
    return _History(
        events=_events(export["events"]),
        workflow_name=workflow_name,
        execution_id=execution_id,
        inputs=export.get("input"),
    )


def load_export(path: str | os.PathLike) -> dict[str, Any]:
    """Read a history saved by `export_history` (or `durable_replay --export`) from a file.

    Raises:
        ValueError: the file is missing or holds no exported history.
    """
    try:
        export = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"Cannot read {os.fspath(path)!r}: {exc.strerror}.") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{os.fspath(path)!r} is not valid JSON: {exc}.") from exc
    except RecursionError:
        raise ValueError(f"{os.fspath(path)!r} is nested too deeply to be a history.") from None
    if not isinstance(export, dict) or "events" not in export:
        raise ValueError(f"{os.fspath(path)!r} holds no exported history (no 'events' list).")
    return export


def _history(history: Any) -> _History:
    if isinstance(history, WorkflowExecution | uuid.UUID):
        return _from_database(history)
    if isinstance(history, Mapping):
        return _from_export(history)
    if isinstance(history, Path):
        return _from_export(load_export(history))
    if isinstance(history, str):
        try:
            execution_id = uuid.UUID(history)
        except ValueError:
            return _from_export(load_export(history))
        return _from_database(execution_id)
    return _History(events=_events(history))


def _definition(workflow: str | Callable | None, recorded_name: str | None) -> WorkflowDefinition:
    if workflow is None:
        if recorded_name is None:
            raise ValueError("This history does not name its workflow: pass workflow=.")
        return register.get_workflow(recorded_name)
    if isinstance(workflow, str):
        return register.get_workflow(workflow)
    try:
        return register.get_workflow(workflow)
    except WorkflowNotFound:  # a function under test that is not (or not yet) registered
        name = recorded_name or f"{workflow.__module__}.{workflow.__qualname__}"
        return WorkflowDefinition(name, workflow, inspect.iscoroutinefunction(workflow))


def _started_input(events: list[Event]) -> dict[str, Any] | None:
    for event in events:
        if event.kind == EventKind.WORKFLOW_STARTED:
            return event.data.get("input")
    return None


def _code_events(events: list[Event]) -> tuple[list[Event], str | None]:
    """The events the workflow's code replays, and the status the engine ended it with, if so.

    A timeout ends an execution without running its code: its last workflow task holds only
    `workflow_timed_out`, which no code issues.
    """
    if not events or events[-1].kind != EventKind.WORKFLOW_TIMED_OUT:
        return events, None
    cut = -2 if len(events) > 1 and events[-2].kind == EventKind.WORKFLOW_TASK_STARTED else -1
    return events[:cut], ExecutionStatus.TIMED_OUT


def replay(
    history: Any,
    workflow: str | Callable | None = None,
    *,
    inputs: dict[str, Any] | None = None,
    execution_id: uuid.UUID | str | None = None,
) -> ReplayResult:
    """Re-live a recorded history with the code deployed now; nothing is written or run.

    Args:
        history: a list of `Event`s or of dicts (`{"kind", "command_seq", "name", "data"}`);
            a dict made by `export_history` or the path of a file holding one; or an
            execution id or `WorkflowExecution`, whose history is read from the database.
        workflow: a registered workflow name or function, or a plain function (the new code
            under test); by default the workflow the history names.
        inputs: the workflow's keyword arguments; by default those the history recorded.
        execution_id: seeds `ctx.random()` and `ctx.uuid4()`; by default the history's own.

    Returns:
        A `ReplayResult`: the status the code reaches, with its result, error or wait.

    Raises:
        NonDeterminismError: the code issued other commands than history recorded; the
            message says what history expected and what the code issued.
        WorkflowNotFound: no execution has that id, or no workflow that name.
        ValueError: `history` is not a history.
    """
    recorded = _history(history)
    definition = _definition(workflow, recorded.workflow_name)
    if inputs is None:
        inputs = recorded.inputs
    if inputs is None:
        inputs = _started_input(recorded.events) or {}
    if execution_id is None:
        execution_id = recorded.execution_id or REPLAY_EXECUTION_ID
    info = WorkflowInfo(execution_id=uuid.UUID(str(execution_id)), workflow_name=definition.name)
    events, ended_by_engine = _code_events(recorded.events)
    instance = replay_events(definition, info, inputs, events)
    count = len(recorded.events)
    end = instance.completion
    if end is None and ended_by_engine is not None:
        return ReplayResult(ended_by_engine, waiting_on=instance.waiting_on(), events=count)
    if end is None:
        waiting_on = instance.waiting_on() if instance.started else "its first workflow task"
        return ReplayResult(ExecutionStatus.RUNNING, waiting_on=waiting_on, events=count)
    return ReplayResult(
        _COMPLETION_STATUS.get(end.kind, end.kind.removeprefix("workflow_")),
        result=end.data.get("result"),
        error=end.data.get("error"),
        events=count,
    )


def export_history(execution_id: uuid.UUID | str) -> dict[str, Any]:
    """The execution's history as JSON-able data, to save as a CI fixture for `replay`.

    Returns:
        `{"workflow_name", "execution_id", "input", "events": [{"kind", "command_seq",
        "name", "data"}, ...]}`.

    Raises:
        WorkflowNotFound: no execution has that id.
    """
    recorded = _from_database(execution_id)
    return {
        "workflow_name": recorded.workflow_name,
        "execution_id": str(recorded.execution_id),
        "input": recorded.inputs,
        "events": [
            {"kind": e.kind, "command_seq": e.command_seq, "name": e.name, "data": e.data}
            for e in recorded.events
        ],
    }


areplay = sync_to_async(replay)
aexport_history = sync_to_async(export_history)
