"""OpenTelemetry spans of starts, signals, workflow tasks and activity attempts, and the trace
context that carries a start's trace into the work it causes.

Optional: without the `[otel]` extra (`opentelemetry-api`), `trace` is None and every
function here does nothing. So it does with the API installed (often as another package's
dependency) but no tracer provider set, where it could only make no-op spans. With a
provider set, spans go to it; the project configures the SDK and its exporters.

The trace context travels as W3C headers (`traceparent`, `tracestate`), by the globally
configured propagator: `start_workflow` stores its span's in the `WORKFLOW_STARTED` event,
which parents the execution's workflow-task spans; a workflow task stores its span's in the
options of each activity it schedules, which parents that activity's attempt spans, in
whichever process runs them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # the [otel] extra is not installed: nothing here does anything
    trace = None

TRACER_NAME = "django_durable"
# A proxy tracer: it follows the provider the project sets, even after this import.
_tracer = trace.get_tracer(TRACER_NAME) if trace is not None else None
_proxy = _tracer
_provider_set = False  # once set, a global tracer provider cannot be unset

Carrier = dict[str, str]  # W3C trace context headers, as stored in JSON


class _NoSpan:
    """What the functions here hand out without OpenTelemetry: accepts and ignores all."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        pass

    def is_recording(self) -> bool:
        return False

    def end(self) -> None:
        pass


NO_SPAN = _NoSpan()


def enabled() -> bool:
    """Whether spans go anywhere: the API is installed and a tracer provider set (or a
    tracer given, as tests do). Otherwise nothing here costs more than this check."""
    global _provider_set
    if trace is None:
        return False
    if _provider_set or _tracer is not _proxy:
        return True
    _provider_set = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    return _provider_set


def current_carrier() -> Carrier:
    """The current trace context as W3C headers; {} when there is none to carry."""
    if not enabled():
        return {}
    carrier: Carrier = {}
    propagate.inject(carrier)
    return carrier


def carrier_of(span: Any) -> Carrier:
    """`span`'s trace context as W3C headers (it need not be current); {} if it has none."""
    if span is NO_SPAN or not enabled() or not span.get_span_context().is_valid:
        return {}
    carrier: Carrier = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def _kind(name: str):
    return {"producer": SpanKind.PRODUCER, "consumer": SpanKind.CONSUMER}.get(
        name, SpanKind.INTERNAL
    )


def _context(parent: Mapping[str, str] | None):
    """The context a span with carried `parent` starts in; None (the current one) without."""
    if not parent:
        return None
    return propagate.extract(parent)


def start_span(
    name: str,
    *,
    parent: Mapping[str, str] | None = None,
    kind: str = "internal",
    attributes: Mapping[str, Any] | None = None,
) -> Any:
    """Start a span that is not made current (several run at once); end it with `finish`.

    `parent` is a carrier (`current_carrier`, `carrier_of`); without one the span is a
    child of the current span, if any. `kind`: "producer", "consumer" or "internal".
    """
    if not enabled():
        return NO_SPAN
    return _tracer.start_span(
        name, context=_context(parent), kind=_kind(kind), attributes=_clean(attributes)
    )


@contextlib.contextmanager
def span(
    name: str,
    *,
    parent: Mapping[str, str] | None = None,
    kind: str = "internal",
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """A span made current for the block (what runs inside nests under it, and
    `current_carrier` carries it); an exception escaping the block is recorded on it."""
    if not enabled():
        yield NO_SPAN
        return
    with _tracer.start_as_current_span(
        name, context=_context(parent), kind=_kind(kind), attributes=_clean(attributes)
    ) as current:
        yield current


def finish(span: Any, *, error: str | None = None, **attributes: Any) -> None:
    """End `span` with these attributes (prefixed `durable.`), as failed if `error` says why."""
    if span is NO_SPAN:
        return
    set_attributes(span, **attributes)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()


def set_attributes(span: Any, **attributes: Any) -> None:
    """Set `durable.<name>` attributes on `span`; None values are left out."""
    if span is not NO_SPAN and attributes:
        span.set_attributes(_clean({f"durable.{k}": v for k, v in attributes.items()}))


def record_error(span: Any, exc: BaseException) -> None:
    """Mark `span` failed by `exc`, which the code around it catches (so `span` cannot see)."""
    if span is NO_SPAN:
        return
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Attributes OpenTelemetry accepts: None left out, other non-primitive values as text."""
    if not attributes:
        return None
    return {
        key: value if isinstance(value, str | bool | int | float) else str(value)
        for key, value in attributes.items()
        if value is not None
    }


def attributes_of(claim: Any, **more: Any) -> dict[str, Any]:
    """The `durable.*` attributes naming what `claim` is about (an execution, an attempt)."""
    found = {
        "execution_id": getattr(claim, "execution_id", None),
        "workflow_name": getattr(claim, "workflow_name", None),
        "activity_name": getattr(claim, "activity_name", None),
        "attempt": getattr(claim, "attempt", None),
        **more,
    }
    # None and "" are unknown (a claim from before workflow names were read): left out.
    return {f"durable.{key}": value for key, value in found.items() if value not in (None, "")}
