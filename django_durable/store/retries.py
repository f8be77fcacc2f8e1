"""Second tries that operators ask for: retry an ended execution, resume a parked one.

A retry starts a new execution through the start path (`starts.start_execution`: committed
with its first history event and its NOTIFY like any start) with the ended one's workflow,
input, workflow_id and execution timeout, linked to it by `retried_from`. The ended row is
locked meanwhile, so two retries of it at once (a double click, two operators) make one new
execution: an execution is retried at most once, and the chain of retries stays a line.

A resume is `workers.unpark_executions` for one execution: it never waits for a lock.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import transaction

from ..constants import ExecutionStatus
from ..exceptions import ExecutionNotRetryable
from ..models import WorkflowExecution
from .db import alias, notify, now_or
from .executions import _executions, get_execution
from .starts import IdReusePolicy, start_execution, started_timeout

RESTARTABLE = (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.CANCELED)


def check_retryable(execution: WorkflowExecution) -> None:
    """Raise `ExecutionNotRetryable` unless `execution` can be resumed (it is parked) or
    retried (it failed, timed out or was canceled, and is nobody's child: a new child would
    have no parent waiting for it)."""
    pk, status = execution.pk, execution.status
    if status == ExecutionStatus.RUNNING:
        raise ExecutionNotRetryable(
            f"Execution {pk} is running: wait for it to end, or cancel it and retry it then."
        )
    if status == ExecutionStatus.COMPLETED:
        raise ExecutionNotRetryable(
            f"Execution {pk} completed: start its workflow again instead of retrying it."
        )
    if status == ExecutionStatus.BLOCKED:
        return
    if execution.parent_id is not None:
        raise ExecutionNotRetryable(
            f"Execution {pk} is a child of execution {execution.parent_id}: retry its parent, "
            "which starts its children again."
        )
    if status not in RESTARTABLE:
        raise ExecutionNotRetryable(f"Execution {pk} is {status}: it cannot be retried.")


def retry_execution(execution_id: uuid.UUID | str, *, now: datetime | None = None) -> uuid.UUID:
    """Commit a new execution that runs the ended one again from its start; return its id.

    Same workflow, input, workflow_id and execution timeout (as the ended one was started
    with), `retried_from` the ended one. Refused (`ExecutionNotRetryable`, nothing written)
    unless `check_retryable` passes and the execution ended; when it was already retried; and
    when a live execution holds its workflow_id (at most one live execution has it).
    """
    with transaction.atomic(using=alias()):
        ended = get_execution(execution_id)  # a clear WorkflowNotFound for a bad id
        ended = _executions().select_for_update().get(pk=ended.pk)
        check_retryable(ended)
        if ended.status not in RESTARTABLE:
            raise ExecutionNotRetryable(
                f"Execution {ended.pk} is {ended.status}: resume it instead of retrying it."
            )
        earlier = (
            _executions()
            .filter(retried_from=ended.pk)
            .order_by("-created_at")
            .values_list("pk", flat=True)
            .first()
        )
        if earlier is not None:
            raise ExecutionNotRetryable(
                f"Execution {ended.pk} was already retried as execution {earlier}: "
                "retry that one instead, if it ended without completing."
            )
        new_id, created = start_execution(
            ended.workflow_name,
            ended.input,
            workflow_id=ended.workflow_id,
            id_reuse_policy=IdReusePolicy.ALLOW_DUPLICATE,
            timeout=started_timeout(ended.pk),
            now=now,
            retried_from=ended.pk,
        )
        if not created:
            raise ExecutionNotRetryable(
                f"Execution {new_id} holds workflow_id {ended.workflow_id!r} and has not "
                f"ended: wait for it, or cancel it, before retrying execution {ended.pk}."
            )
    return new_id


def resume_execution(execution_id: uuid.UUID, *, now: datetime | None = None) -> bool:
    """Give one parked execution another try: running again, its workflow task due now, the
    workers woken. The code deployed now may be compatible with its history.

    Returns False, having written nothing, when it is no longer parked or its row is locked
    at this moment (a cancel or an un-park is changing it): like `unpark_executions`, this
    never waits for a lock, and the caller looks at the execution again.
    """
    now = now_or(now)
    parked = _executions().filter(pk=execution_id, status=ExecutionStatus.BLOCKED)
    with transaction.atomic(using=alias()):
        free = parked.select_for_update(skip_locked=True).values("pk")
        resumed = parked.filter(pk__in=free).update(status=ExecutionStatus.RUNNING, wake_at=now)
        if resumed:
            notify("workflow", execution_id)
    return bool(resumed)
