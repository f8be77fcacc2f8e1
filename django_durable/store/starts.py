"""Starting executions: each new execution with its first history event, in one transaction.

`workflow_id` makes a start idempotent (`IdReusePolicy`); `start_executions` starts many
at once; children are created here too, inside their parent's workflow-task transaction.

On PostgreSQL a start is one statement (the execution, its `WORKFLOW_STARTED` event and
the NOTIFY, written by data-modifying CTEs, see `inserts`): in autocommit it is its own
transaction, so a start costs one round trip instead of five (BEGIN, two INSERTs, NOTIFY,
COMMIT). Other databases go through the ORM.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connections, transaction

from ..conf import durable_setting
from ..constants import EventKind, ExecutionStatus
from ..models import HistoryEvent, WorkflowExecution
from ..observability import tracing
from ..payloads import check_text, to_json_value
from . import inserts
from .db import alias, notify, now_or

BULK_CHUNK = 5_000  # executions per statement when a batch is started at once,
BULK_CHUNK_CHARS = 32 * 1024 * 1024  # and at most about this much JSON text


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


def _started_data(
    inputs: dict[str, Any], timeout: float | None, trace: tracing.Carrier | None = None
) -> dict[str, Any]:
    """The data of a `WORKFLOW_STARTED` event: what the replayer starts the workflow with,
    and the trace context of the start (`trace`, or the current one), which parents the
    execution's workflow-task spans; none is stored where there is none to carry."""
    data = {"input": inputs, "timeout": timeout}
    carrier = tracing.current_carrier() if trace is None else trace
    if carrier:
        data["trace"] = carrier
    return data


def started_timeout(execution_id: uuid.UUID) -> float | None:
    """The execution timeout, in seconds, that `execution_id` was started with (None: none),
    as its `WORKFLOW_STARTED` event recorded it: the workflow's default may have changed since.
    """
    data = (
        HistoryEvent.objects.using(alias())
        .filter(execution_id=execution_id, sequence=1, kind=EventKind.WORKFLOW_STARTED)
        .values_list("data", flat=True)
        .first()
    )
    return (data or {}).get("timeout")


def _started(
    execution_id: uuid.UUID,
    workflow_name: str,
    inputs: dict[str, Any],
    now: datetime,
    *,
    workflow_id: str | None = None,
    parent_id: uuid.UUID | None = None,
    parent_command_seq: int | None = None,
    timeout: float | None = None,
    retried_from: uuid.UUID | None = None,
    trace: tracing.Carrier | None = None,
) -> tuple[WorkflowExecution, HistoryEvent]:
    """A new execution and its first history event, unsaved: what every start writes
    (`trace`: the start's trace context, by default the current one)."""
    execution = WorkflowExecution(
        id=execution_id,
        workflow_name=workflow_name,
        workflow_id=workflow_id,
        input=inputs,
        parent_id=parent_id,
        parent_command_seq=parent_command_seq,
        timeout_at=now + timedelta(seconds=timeout) if timeout else None,
        wake_at=now,
        retried_from_id=retried_from,
    )
    event = HistoryEvent(
        execution_id=execution_id,
        sequence=1,
        kind=EventKind.WORKFLOW_STARTED,
        name=workflow_name,
        data=_started_data(inputs, timeout, trace),
    )
    return execution, event


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
    execution, event = _started(
        execution_id or uuid.uuid4(),
        workflow_name,
        inputs,
        now,
        workflow_id=workflow_id,
        parent_id=parent_id,
        parent_command_seq=parent_command_seq,
        timeout=timeout,
    )
    execution.save(force_insert=True, using=alias())
    event.save(force_insert=True, using=alias())
    notify("workflow", execution.pk)
    return execution


# -- PostgreSQL: executions, events and the NOTIFY in one statement ----------------------------


def _on_postgresql() -> bool:
    return connections[alias()].vendor == "postgresql"


def _own_transaction():
    """A savepoint inside the caller's transaction, so that a failed start leaves it usable;
    nothing in autocommit, where one statement is its own transaction."""
    if connections[alias()].in_atomic_block:
        return transaction.atomic(using=alias())
    return contextlib.nullcontext()


def _notify(about: uuid.UUID) -> tuple[str, list[Any]]:
    """The NOTIFY that wakes workers (delivered when the statement's transaction commits)."""
    return "SELECT pg_notify(%s, %s)", [durable_setting("CHANNEL"), f"workflow:{about}"]


def _start_statement(execution: WorkflowExecution, event: HistoryEvent) -> tuple[str, list]:
    """One statement: insert `execution` and `event`, and NOTIFY."""
    db = alias()
    notify_sql, notify_params = _notify(execution.pk)
    sql = (
        f"WITH executions AS ({inserts.values_sql(WorkflowExecution, db)}), "
        f"events AS ({inserts.values_sql(HistoryEvent, db)}) {notify_sql}"
    )
    params = inserts.values_params(execution, db) + inserts.values_params(event, db)
    return sql, params + notify_params


# Each row of a bulk start statement: [execution id, input, its started event's data].
_EXECUTION_FROM_ROW = ((WorkflowExecution._meta.pk.attname, 0), ("input", 1))
_EVENT_FROM_ROW = ((HistoryEvent._meta.get_field("execution").attname, 0), ("data", 2))


def _bulk_row(
    execution_id: uuid.UUID,
    inputs: dict[str, Any],
    timeout: float | None,
    trace: tracing.Carrier,
) -> str:
    """One row of a bulk start statement, as JSON text (ASCII, the rest `\\u` escaped)."""
    return json.dumps([str(execution_id), inputs, _started_data(inputs, timeout, trace)])


def _bulk_statement(
    template: tuple[WorkflowExecution, HistoryEvent],
    rows: list[str],
    notify_about: uuid.UUID | None,
) -> tuple[str, list[Any]]:
    """One statement: insert an execution and its event per row (`_bulk_row`), the other
    columns as in `template`; NOTIFY unless `notify_about` is None."""
    db = alias()
    execution, event = template
    params = [f"[{','.join(rows)}]"]
    params += inserts.json_rows_params(execution, _EXECUTION_FROM_ROW, db)
    params += inserts.json_rows_params(event, _EVENT_FROM_ROW, db)
    sql = (
        f"WITH {inserts.rows_cte()}, "
        f"executions AS ({inserts.json_rows_sql(WorkflowExecution, _EXECUTION_FROM_ROW, db)})"
    )
    event_sql = inserts.json_rows_sql(HistoryEvent, _EVENT_FROM_ROW, db)
    if notify_about is None:
        return f"{sql} {event_sql}", params
    notify_sql, notify_params = _notify(notify_about)
    return f"{sql}, events AS ({event_sql}) {notify_sql}", params + notify_params


def _chunks(rows: list[str]) -> Iterator[list[str]]:
    """`rows` in runs of at most `BULK_CHUNK` rows and about `BULK_CHUNK_CHARS` of text."""
    chunk: list[str] = []
    size = 0
    for row in rows:
        if chunk and (len(chunk) == BULK_CHUNK or size + len(row) > BULK_CHUNK_CHARS):
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += len(row) + 1
    if chunk:
        yield chunk


# -- starts --------------------------------------------------------------------------------


def _insert_started(execution: WorkflowExecution, event: HistoryEvent) -> None:
    """Commit `execution` and `event` (and NOTIFY), or join the caller's transaction."""
    if not _on_postgresql():
        with transaction.atomic(using=alias()):
            execution.save(force_insert=True, using=alias())
            event.save(force_insert=True, using=alias())
        return
    sql, params = _start_statement(execution, event)
    with _own_transaction(), connections[alias()].cursor() as cursor:
        cursor.execute(sql, params)


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
    retried_from: uuid.UUID | None = None,
) -> tuple[uuid.UUID, bool]:
    """Commit a new execution and its first history event; return (id, created).

    With a `workflow_id`, an execution that has it may be returned instead (nothing is
    written): a running one always, an ended one as `id_reuse_policy` says. `retried_from`
    is the ended execution this one retries (`retries.retry_execution`).
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
        execution, event = _started(
            uuid.uuid4(),
            workflow_name,
            inputs,
            now,
            workflow_id=workflow_id,
            timeout=timeout,
            retried_from=retried_from,
        )
        try:
            _insert_started(execution, event)
            return execution.pk, True
        except IntegrityError:
            if workflow_id is None:
                raise
    raise RuntimeError(f"Could not start or find an execution with workflow_id {workflow_id!r}.")


def start_executions(
    workflow_name: str,
    inputs_list: Iterable[dict[str, Any]],
    *,
    timeout: float | None = None,
    now: datetime | None = None,
) -> list[uuid.UUID]:
    """Commit one new execution per input, all or none; return their ids in input order.

    Every input is checked before anything is written: a bad one refuses the whole batch
    (`PayloadError`, or `TypeError` for one that is not a dict) with an error naming its
    index. The executions and their `WORKFLOW_STARTED` events are written in one
    transaction, `BULK_CHUNK` a statement, with one NOTIFY for the batch. There is no
    `workflow_id` here: start one by one (`start_execution`) for idempotent starts.
    """
    checked = []
    for index, inputs in enumerate(inputs_list):
        what = f"Input {index} of workflow {workflow_name!r}"
        inputs = to_json_value(inputs, what)
        if not isinstance(inputs, dict):
            raise TypeError(
                f"{what} must be a dict of keyword arguments, not {type(inputs).__name__}."
            )
        checked.append(inputs)
    if not checked:
        return []
    now = now_or(now)
    ids = [uuid.uuid4() for _ in checked]
    if not _on_postgresql():
        with transaction.atomic(using=alias()):
            _create_executions_orm(workflow_name, ids, checked, timeout=timeout, now=now)
        return ids
    trace = tracing.current_carrier()  # the batch's one start: read once, not per row
    template = _started(ids[0], workflow_name, {}, now, timeout=timeout, trace=trace)
    rows = [
        _bulk_row(execution_id, inputs, timeout, trace)
        for execution_id, inputs in zip(ids, checked, strict=True)
    ]
    chunks = list(_chunks(rows))
    with (
        _own_transaction() if len(chunks) == 1 else transaction.atomic(using=alias()),
        connections[alias()].cursor() as cursor,
    ):
        for number, chunk in enumerate(chunks, start=1):
            last = number == len(chunks)  # one NOTIFY, with the last statement
            cursor.execute(*_bulk_statement(template, chunk, ids[0] if last else None))
    return ids


def _create_executions_orm(
    workflow_name: str,
    ids: list[uuid.UUID],
    inputs_list: list[dict[str, Any]],
    *,
    timeout: float | None,
    now: datetime,
) -> None:
    """`start_executions` through the ORM; the caller holds the transaction."""
    trace = tracing.current_carrier()
    started = [
        _started(execution_id, workflow_name, inputs, now, timeout=timeout, trace=trace)
        for execution_id, inputs in zip(ids, inputs_list, strict=True)
    ]
    _executions().bulk_create([execution for execution, _ in started], batch_size=BULK_CHUNK)
    HistoryEvent.objects.using(alias()).bulk_create(
        [event for _, event in started], batch_size=BULK_CHUNK
    )
    notify("workflow", ids[0])
