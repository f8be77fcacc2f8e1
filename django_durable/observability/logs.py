"""What every log record about an execution carries: its fields, and the filter that shows them.

Each module logs through its own logger, named after the module (`logging.getLogger(__name__)`),
so the logger tree mirrors the layers: `django_durable.engine.*` (the worker),
`django_durable.runtime.*`, `django_durable.store.*`, `django_durable.api`,
`django_durable.management.*`. A record about one execution carries `extra` fields:
`execution_id` and `workflow_name`, and for an activity attempt `activity_name` and
`attempt`; `about(claim)` builds them, so a call site stays one line:

    logger.warning("Rolled back %s.", name, extra=about(claim))

Records made while workflow code runs (the runtime knows no execution) get them from
`scope`, which the engine sets around each call into workflow code. `ExecutionFields`, a
handler filter, fills the fields a record lacks, so a format string that names them never
raises `KeyError` (see docs/observability.md). Importable before Django is set up:
`LOGGING` refers to the filter by its dotted path.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

FIELDS = ("execution_id", "workflow_name", "activity_name", "attempt")
MISSING = "-"  # what `ExecutionFields` puts in a field the record does not carry
# A console format: the fields follow the message, where the record has any.
CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(durable_context)s"

_scope: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "durable_log_scope", default=None
)


def about(
    claim: Any = None,
    *,
    execution_id: Any = None,
    workflow_name: str | None = None,
    activity_name: str | None = None,
    attempt: int | None = None,
) -> dict[str, Any]:
    """The `extra` fields of a record about `claim` (a workflow or activity claim, or
    anything with the same attributes), or about what the keywords name.

    Only the fields known are set; `execution_id` is text, as a JSON formatter writes it.
    """
    if claim is not None:
        execution_id = getattr(claim, "execution_id", execution_id)
        workflow_name = getattr(claim, "workflow_name", workflow_name)
        activity_name = getattr(claim, "activity_name", activity_name)
        attempt = getattr(claim, "attempt", attempt)
    fields: dict[str, Any] = {}
    if execution_id is not None:
        fields["execution_id"] = str(execution_id)
    if workflow_name:
        fields["workflow_name"] = workflow_name
    if activity_name:
        fields["activity_name"] = activity_name
    if attempt is not None:
        fields["attempt"] = attempt
    return fields


def call_in_scope(fields: Mapping[str, Any], fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)`, with `fields` on every record a `ScopedLogger` makes meanwhile (in this
    thread's context): how the engine names the execution whose workflow code runs."""
    token = _scope.set(fields)
    try:
        return fn(*args)
    finally:
        _scope.reset(token)


class ScopedLogger(logging.LoggerAdapter):
    """A logger for code that cannot name the execution it works for (the runtime): its
    records carry the fields of the innermost `call_in_scope`, under any `extra` given."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})

    def process(self, msg: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        scope = _scope.get()
        if scope:
            kwargs["extra"] = {**scope, **(kwargs.get("extra") or {})}
        return msg, kwargs


class ExecutionFields(logging.Filter):
    """A handler filter: give every record the execution fields, `-` where it has none.

    Records about no execution (the worker starting, a lost connection) then format with
    the same format string as the others. It also sets `durable_context`, the fields the
    record does carry as ` [execution_id=... workflow_name=...]` (empty when none), for
    formats that show them only where they mean something. It never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        present = []
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is None or value == MISSING:  # MISSING: a filter ran on it already
                setattr(record, name, MISSING)
            else:
                present.append(f"{name}={value}")
        record.durable_context = f" [{' '.join(present)}]" if present else ""
        return True
