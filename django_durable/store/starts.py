"""Starting executions: a new execution and its first history event, in one transaction.

`workflow_id` makes a start idempotent (`IdReusePolicy`); children are created here too,
inside their parent's workflow-task transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction

from ..constants import EventKind, ExecutionStatus
from ..models import HistoryEvent, WorkflowExecution
from ..payloads import check_text, to_json_value
from .db import alias, notify, now_or


def _executions():
    return WorkflowExecution.objects.using(alias())


class IdReusePolicy:
    """What starting with a `workflow_id` does once the execution holding it has ended.

    While an execution with the id runs, a start always returns that execution's id.
    """

    RETURN_EXISTING = "return_existing"  # the ended execution's id is returned
    ALLOW_DUPLICATE = "allow_duplicate"  # a new execution starts
    ALLOW_DUPLICATE_FAILED_ONLY = "allow_duplicate_failed_only"  # a new one, unless it completed

    ALL = (RETURN_EXISTING, ALLOW_DUPLICATE, ALLOW_DUPLICATE_FAILED_ONLY)


def create_execution(
    workflow_name: str,
    inputs: dict[str, Any],
    now: datetime,
    *,
    execution_id: uuid.UUID | None = None,
    workflow_id: str | None = None,
    parent_id: uuid.UUID | None = None,
    parent_command_seq: int | None = None,
    timeout: float | None = None,
) -> WorkflowExecution:
    """Insert an execution and its first history event; the caller holds the transaction."""
    execution = _executions().create(
        id=execution_id or uuid.uuid4(),
        workflow_name=workflow_name,
        workflow_id=workflow_id,
        input=inputs,
        parent_id=parent_id,
        parent_command_seq=parent_command_seq,
        timeout_at=now + timedelta(seconds=timeout) if timeout else None,
        wake_at=now,
    )
    HistoryEvent.objects.using(alias()).create(
        execution=execution,
        sequence=1,
        kind=EventKind.WORKFLOW_STARTED,
        name=workflow_name,
        data={"input": inputs, "timeout": timeout},
    )
    notify("workflow", execution.pk)
    return execution


def _reusable(workflow_id: str, policy: str) -> uuid.UUID | None:
    """The id a start with `workflow_id` returns instead of starting; None to start anew."""
    rows = _executions().filter(workflow_id=workflow_id).order_by("-created_at")
    latest = rows.values_list("pk", "status").first()
    if latest is None:
        return None
    pk, status = latest
    if status not in ExecutionStatus.TERMINAL or policy == IdReusePolicy.RETURN_EXISTING:
        return pk
    if policy == IdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY and status == ExecutionStatus.COMPLETED:
        return pk
    return None


def start_execution(
    workflow_name: str,
    inputs: dict[str, Any],
    *,
    workflow_id: str | None = None,
    id_reuse_policy: str = IdReusePolicy.RETURN_EXISTING,
    timeout: float | None = None,
    now: datetime | None = None,
) -> tuple[uuid.UUID, bool]:
    """Commit a new execution and its first history event; return (id, created).

    With a `workflow_id`, an execution that has it may be returned instead (nothing is
    written): a running one always, an ended one as `id_reuse_policy` says.
    """
    if id_reuse_policy not in IdReusePolicy.ALL:
        raise ValueError(
            f"id_reuse_policy must be one of {', '.join(IdReusePolicy.ALL)}, "
            f"not {id_reuse_policy!r}."
        )
    inputs = to_json_value(inputs, f"The input of workflow {workflow_name!r}")
    if not isinstance(inputs, dict):
        raise TypeError("A workflow's input is a dict of keyword arguments.")
    if workflow_id is not None:
        check_text(workflow_id, "The workflow_id")
    now = now_or(now)
    for _ in range(3):  # a racing start with the same workflow_id wins; return its id
        if workflow_id is not None and (existing := _reusable(workflow_id, id_reuse_policy)):
            return existing, False
        try:
            with transaction.atomic(using=alias()):
                execution = create_execution(
                    workflow_name, inputs, now, workflow_id=workflow_id, timeout=timeout
                )
            return execution.pk, True
        except IntegrityError:
            if workflow_id is None:
                raise
    raise RuntimeError(f"Could not start or find an execution with workflow_id {workflow_id!r}.")
