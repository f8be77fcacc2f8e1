"""Replay: rebuild a workflow instance from history, checking every command against it."""

from __future__ import annotations

from itertools import zip_longest
from typing import Any

from ..constants import EventKind
from ..exceptions import NonDeterminismError
from ..registry import WorkflowDefinition
from .context import WorkflowInfo
from .events import Event
from .instance import WorkflowInstance


def split_activations(history: list[Event]) -> list[tuple[list[Event], list[Event]]]:
    """Group history into (inputs, recorded outputs), one pair per workflow task."""
    activations: list[tuple[list[Event], list[Event]]] = []
    for event in history:
        if event.kind == EventKind.WORKFLOW_TASK_STARTED:
            activations.append(([event], []))
        elif event.kind == EventKind.WORKFLOW_STARTED:
            continue
        elif not activations:
            raise ValueError(f"History has {event.describe()} before its first workflow task.")
        elif event.kind in EventKind.INPUTS:
            activations[-1][0].append(event)
        else:
            activations[-1][1].append(event)
    return activations


def _same_command(issued: Event | None, recorded: Event | None) -> bool:
    return (
        issued is not None
        and recorded is not None
        and (issued.kind, issued.command_seq, issued.name)
        == (recorded.kind, recorded.command_seq, recorded.name)
    )


def _advice(recorded: Event | None) -> str:
    if recorded is not None and recorded.kind == EventKind.MARKER_RECORDED:
        if recorded.data.get("kind") == "version":
            return f"The code no longer calls ctx.get_version({recorded.name!r}) here."
        return (
            f"The code no longer calls ctx.patched({recorded.name!r}) here: keep "
            f"ctx.deprecate_patch({recorded.name!r}) until such executions have finished."
        )
    return "Deploy code compatible with this history, or branch with ctx.patched()."


def check_commands(issued: list[Event], recorded: list[Event], info: WorkflowInfo) -> None:
    """Raise `NonDeterminismError` unless the code issued what history recorded, in order.

    A marker that `ctx.patched()` or `ctx.get_version()` did not issue because history has
    none at that point is no mismatch: those calls read `recorded` and issue nothing then.
    """
    for mine, theirs in zip_longest(issued, recorded):
        if not _same_command(mine, theirs):
            expected = theirs.describe() if theirs else "no further command"
            found = mine.describe() if mine else "no further command"
            raise NonDeterminismError(
                f"Workflow {info.workflow_name!r} (execution {info.execution_id}) is not "
                f"deterministic: history expects {expected}, but the code now issued {found}. "
                f"{_advice(theirs)}",
                expected=expected,
                found=found,
            )


def replay(
    definition: WorkflowDefinition,
    info: WorkflowInfo,
    inputs: dict[str, Any],
    history: list[Event],
) -> WorkflowInstance:
    """Return an instance that has re-lived `history`; `NonDeterminismError` on a mismatch."""
    instance = WorkflowInstance(definition, info, inputs)
    for activation_inputs, recorded in split_activations(history):
        check_commands(instance.activate(activation_inputs, recorded), recorded, info)
    return instance
