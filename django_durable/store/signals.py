"""Inputs from outside an execution: signals and cancel requests.

Locks follow the order documented in `executions`: a parent before its child.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Max

from ..constants import EventKind, ExecutionStatus
from ..exceptions import ExecutionFinished
from ..models import HistoryEvent, PendingSignal
from ..payloads import check_text, to_json_value
from .db import alias, now_or
from .executions import _executions, end_leftovers, get_execution, wake_execution


def _locked_live_execution(execution_id: uuid.UUID | str, action: str, *, parent_first: bool):
    """The execution, locked; with `parent_first`, its parent's row is locked before it."""
    execution = get_execution(execution_id)  # a clear WorkflowNotFound for a bad id
    if parent_first and execution.parent_id is not None:  # a parent never changes
        list(_executions().select_for_update().filter(pk=execution.parent_id).values("pk"))
    execution = _executions().select_for_update().get(pk=execution.pk)
    if execution.is_terminal:
        raise ExecutionFinished(
            f"Execution {execution.pk} is already {execution.status}; it cannot {action}."
        )
    return execution


def send_signal(
    execution_id: uuid.UUID | str, name: str, payload: Any = None, *, now: datetime | None = None
) -> None:
    """Queue a signal for the execution; delivered in order by its next workflow task."""
    check_text(name, "The signal name")
    payload = to_json_value(payload, f"The payload of signal {name!r}")
    now = now_or(now)
    with transaction.atomic(using=alias()):
        execution = _locked_live_execution(execution_id, "take signals", parent_first=False)
        PendingSignal.objects.using(alias()).create(execution=execution, name=name, payload=payload)
        wake_execution(execution.pk, now)


def _cancel_parked(execution, reason: str, now: datetime) -> None:
    """End a parked execution at once: its code cannot run to see the cancellation, and an
    operator must be able to clear it. Its history gains only the terminal event."""
    last = (
        HistoryEvent.objects.using(alias())
        .filter(execution=execution)
        .aggregate(last=Max("sequence"))["last"]
    )
    HistoryEvent.objects.using(alias()).create(
        execution=execution,
        sequence=last + 1,
        kind=EventKind.WORKFLOW_CANCELED,
        data={"reason": reason, "while_parked": True},
    )
    _executions().filter(pk=execution.pk).update(
        status=ExecutionStatus.CANCELED,
        cancel_requested=True,
        cancel_reason=reason,
        finished_at=now,
        wake_at=None,
        waiting=[],
    )
    end_leftovers(execution.pk, now)
    if execution.parent_id is not None:
        wake_execution(execution.parent_id, now)


def request_cancel(
    execution_id: uuid.UUID | str, reason: str = "", *, now: datetime | None = None
) -> None:
    """Ask the execution to cancel; its workflow sees `CancelledError` at its next await.

    A parked execution (blocked on non-determinism) is canceled at once instead, which
    wakes its parent: so the parent's row is locked first.
    """
    check_text(reason, "The cancel reason")
    now = now_or(now)
    with transaction.atomic(using=alias()):
        execution = _locked_live_execution(execution_id, "be canceled", parent_first=True)
        if execution.status == ExecutionStatus.BLOCKED:
            _cancel_parked(execution, reason, now)
            return
        if execution.cancel_requested:
            return
        _executions().filter(pk=execution.pk).update(cancel_requested=True, cancel_reason=reason)
        wake_execution(execution.pk, now)
