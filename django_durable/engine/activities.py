"""Running one activity attempt and settling its outcome: result, retry or final error."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, DataError, IntegrityError, connections, transaction
from django.utils import timezone

from .. import activity, store
from ..concurrency import in_event_loop
from ..conf import durable_setting
from ..constants import ActivityStatus
from ..exceptions import ActivityCanceled
from ..observability import tracing
from ..observability.logs import about
from ..observability.metrics import metrics
from ..payloads import describe_exception, storable_error, to_json_value
from ..registry import RetryPolicy, register
from ..store import ActivityClaim, ActivityOutcome
from ..store.db import alias
from .telemetry import activity_span

logger = logging.getLogger(__name__)

# An outcome saying the attempt recorded its own completion (transactional activities).
RECORDED = {"recorded": True}
# The same, for one rolled back because it lost its lease: nothing more to record either.
ROLLED_BACK = {"recorded": True, "rolled_back": True}


class _CompletionRejected(Exception):
    """The attempt lost its lease: roll its transaction back."""


_helper: ThreadPoolExecutor | None = None
_helper_lock = threading.Lock()


def _outside_loop(fn, *args):
    """Run a sync database call; from inside an `async def` activity, on a helper thread.

    Django refuses sync database access on a thread that runs an event loop, and
    `activity.heartbeat()` is a sync call made from async code. The call waits for the helper
    (one short UPDATE, about a millisecond, on a connection the helper keeps), so other async
    attempts of the same process pause that long. Waiting is what lets `heartbeat()` raise
    `ActivityCanceled` at the very call that learns of the cancellation; heartbeats are
    throttled per attempt, so the pauses stay rare. One helper thread per process, kept: a
    new thread per call would open a new database connection per heartbeat.
    """
    if not in_event_loop():
        return fn(*args)
    global _helper
    with _helper_lock:
        if _helper is None:
            _helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="durable-heartbeat")
    return _helper.submit(_on_kept_connection, fn, *args).result()


def _on_kept_connection(fn, *args):
    """`fn(*args)`; once more on a fresh connection if the kept one has gone stale (the
    server closed it while idle, the database restarted). The calls made here are
    idempotent updates."""
    try:
        return fn(*args)
    except DatabaseError:
        connections[alias()].close()
        return fn(*args)


def release_helper_connections() -> None:
    """Close the connections of `_outside_loop`'s helper thread, at the end of a run of async
    attempts: kept between heartbeats, not for ever (a test database must be droppable, a
    server's idle connections are few)."""
    if _helper is not None:
        _helper.submit(connections.close_all).result()


class _Heartbeat:
    """`activity.heartbeat()` for one attempt: throttled writes that detect cancellation."""

    def __init__(self, claim: ActivityClaim) -> None:
        self.claim = claim
        timeout = claim.options.get("heartbeat_timeout")
        self.every = min(1.0, timeout / 3) if timeout else 1.0
        self.last = float("-inf")

    def __call__(self, details: Any) -> None:
        if self.claim.options.get("transactional"):
            raise RuntimeError(
                "A transactional activity cannot heartbeat: its progress would roll back with "
                "it, and its open transaction would hold the row the heartbeat writes."
            )
        if time.monotonic() - self.last < self.every:
            return
        self.last = time.monotonic()
        details = to_json_value(details, "Heartbeat details")
        if not _outside_loop(store.record_heartbeat, self.claim, details):
            raise ActivityCanceled(
                f"Activity {self.claim.activity_name!r} attempt {self.claim.attempt} no longer "
                f"runs (its workflow was canceled or it lost its lease): stop now."
            )


def execute_activity(claim: ActivityClaim) -> dict[str, Any]:
    """Run the attempt in this thread; return `{"result": ...}`, `{"error": {...}}`, or
    `RECORDED` for a transactional activity, which records its own completion.

    Used by the activity processes for `def` activities and by `run_workflow` for both kinds
    (an `async def` one gets an event loop of its own here). User code may raise anything,
    `BaseException` included: it becomes the attempt's error, never the caller's.
    """
    token = activity.current.set(_running_activity(claim))
    with activity_span(claim) as span:
        try:
            definition = register.get_activity(claim.activity_name)
            if claim.options.get("transactional"):
                return _ended(span, _execute_transactionally(claim, definition))
            if definition.is_async:
                try:
                    value = asyncio.run(definition.fn(*claim.args, **claim.kwargs))
                finally:
                    release_helper_connections()
            else:
                value = definition.fn(*claim.args, **claim.kwargs)
            return _ended(span, _succeeded(claim, value))
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the attempt's error
            return _ended(span, _failed(claim, exc), exc)
        finally:
            activity.current.reset(token)


async def execute_activity_async(claim: ActivityClaim) -> dict[str, Any]:
    """`execute_activity` for an `async def` activity, as one task on the caller's loop, so
    that an activity process runs many attempts at once on one loop.

    Same contract: the outcome as a dict, whatever the code raises (cancelling the task
    included, which becomes a `CancelledError` error). `activity.current` is set in this
    task's own context, so `activity.info()` answers for this attempt alone. A `def` (or
    transactional, or unknown) activity, which the activity processes never send here, runs
    on a thread so that it cannot block the loop.
    """
    definition = register.activities.get(claim.activity_name)
    if definition is None or claim.options.get("transactional") or not definition.is_async:
        return await asyncio.to_thread(execute_activity, claim)
    token = activity.current.set(_running_activity(claim))
    with activity_span(claim) as span:
        try:
            value = await definition.fn(*claim.args, **claim.kwargs)
            return _ended(span, _succeeded(claim, value))
        except BaseException as exc:  # CancelledError and SystemExit too: the attempt's error
            return _ended(span, _failed(claim, exc), exc)
        finally:
            activity.current.reset(token)


def _running_activity(claim: ActivityClaim) -> activity.RunningActivity:
    info = activity.ActivityInfo(
        execution_id=claim.execution_id,
        command_seq=claim.command_seq,
        attempt=claim.attempt,
        activity_name=claim.activity_name,
        heartbeat_details=claim.heartbeat_details,
    )
    return activity.RunningActivity(info, _Heartbeat(claim))


def _succeeded(claim: ActivityClaim, value: Any) -> dict[str, Any]:
    return {"result": to_json_value(value, f"The result of activity {claim.activity_name!r}")}


def _failed(claim: ActivityClaim, exc: BaseException) -> dict[str, Any]:
    logger.info(
        "Activity %s attempt %s failed: %r",
        claim.activity_name,
        claim.attempt,
        exc,
        extra=about(claim),
    )
    return {"error": describe_exception(exc)}


def _ended(span: Any, outcome: dict[str, Any], exc: BaseException | None = None) -> dict[str, Any]:
    """`outcome`, once the attempt's span says how it ended (and with what, if it raised)."""
    if exc is not None:
        tracing.record_error(span, exc)
    tracing.set_attributes(span, outcome=_attempt_outcome(outcome))
    return outcome


def _attempt_outcome(outcome: dict[str, Any]) -> str:
    if outcome.get("rolled_back"):
        return "rolled_back"
    return "failed" if "error" in outcome else "completed"


def _execute_transactionally(claim: ActivityClaim, definition) -> dict[str, Any]:
    """Run the body and record its completion in one transaction: both or neither."""
    try:
        with transaction.atomic(using=alias()):
            value = definition.fn(*claim.args, **claim.kwargs)
            result = to_json_value(value, f"The result of activity {claim.activity_name!r}")
            if not store.complete_activity_task(claim, result=result):
                raise _CompletionRejected
    except _CompletionRejected:
        logger.warning(
            "Rolled back %s attempt %s: its lease was lost.",
            claim.activity_name,
            claim.attempt,
            extra=about(claim),
        )
        return ROLLED_BACK
    return RECORDED


def retry_at(claim: ActivityClaim, error: dict[str, Any], now: datetime) -> datetime | None:
    """When a failed attempt is tried again under its retry policy; None if never."""
    policy = RetryPolicy.from_dict(
        claim.options.get("retry_policy") or durable_setting("RETRY_POLICY")
    )
    if not policy.retries(error.get("type", ""), claim.attempt):
        return None
    at = now + timedelta(seconds=policy.delay_after(claim.attempt))
    limit = claim.options.get("schedule_to_close_timeout")
    if limit and at >= claim.scheduled_at + timedelta(seconds=limit):
        return None
    return at


def settle_activity(
    claim: ActivityClaim,
    outcome: dict[str, Any],
    *,
    now: datetime | None = None,
    timed_out: bool = False,
) -> bool:
    """Record an attempt's outcome, retrying an error when its policy allows.

    Returns False when the attempt was no longer current and its outcome was discarded.
    A value the database refuses (`DataError`, `IntegrityError`) is permanent: retrying
    the write would fail the same way at every lease, so the attempt fails for good
    instead, with an error that names the refusal.
    """
    recorded, status = _settle(claim, outcome, now or timezone.now(), timed_out)
    metrics().activity_attempt(claim.activity_name, attempt_outcome(status, recorded))
    return recorded


def outcome_of(
    claim: ActivityClaim,
    outcome: dict[str, Any],
    *,
    timed_out: bool = False,
    now: datetime | None = None,
) -> ActivityOutcome:
    """What to record for an attempt's outcome ({"result": ...} or {"error": ...}, as the
    attempt returned it): its result, a retry under its policy, or a final error. The one
    place that decides it, for outcomes recorded in batches and one by one alike."""
    if "error" not in outcome:
        return ActivityOutcome(claim, ActivityStatus.COMPLETED, result=outcome["result"])
    error = outcome["error"]
    at = retry_at(claim, error, now or timezone.now())
    if at is not None:
        return ActivityOutcome(claim, ActivityStatus.QUEUED, error=error, retry_at=at)
    final = ActivityStatus.TIMED_OUT if timed_out else ActivityStatus.FAILED
    return ActivityOutcome(claim, final, error=error)


def _settle(
    claim: ActivityClaim, outcome: dict[str, Any], now: datetime, timed_out: bool
) -> tuple[bool, str]:
    """`settle_activity`, saying also which status it recorded."""
    if outcome is RECORDED or outcome.get("recorded"):  # by the attempt itself
        return True, "discarded" if outcome.get("rolled_back") else ActivityStatus.COMPLETED
    decided = outcome_of(claim, outcome, timed_out=timed_out, now=now)
    try:
        done = store.complete_activity_task(
            claim,
            result=decided.result,
            error=decided.error,
            retry_at=decided.retry_at,
            status=decided.status,
            now=now,
        )
        return done, decided.status
    except (DataError, IntegrityError) as exc:
        final = ActivityStatus.TIMED_OUT if timed_out else ActivityStatus.FAILED
        what = "result" if decided.error is None else "error"
        error = _refused(claim, what, exc, decided.error or {})
        return _fail_for_good(claim, error, final, now), final


ATTEMPT_OUTCOMES = {
    ActivityStatus.COMPLETED: "completed",
    ActivityStatus.QUEUED: "retried",
    ActivityStatus.FAILED: "failed",
    ActivityStatus.TIMED_OUT: "timed_out",
}


def attempt_outcome(status: str, recorded: bool | None) -> str:
    """The metric label of an attempt whose outcome was recorded with `status` (or was
    discarded: no longer current; or never recorded: the database stayed away)."""
    if recorded is None:
        return "unrecorded"
    return ATTEMPT_OUTCOMES.get(status, status) if recorded else "discarded"


def _refused(
    claim: ActivityClaim, what: str, refusal: Exception, error: dict[str, Any]
) -> dict[str, Any]:
    """The error recorded when the database refused an attempt's result or error."""
    logger.error(
        "The database refused the %s of %s attempt %s (%s); failing the attempt for good.",
        what,
        claim.activity_name,
        claim.attempt,
        refusal,
    )
    described = describe_exception(refusal)
    message = (
        f"The database refused to store the {what} of activity {claim.activity_name!r} "
        f"attempt {claim.attempt} ({described['type']}: {described['message']})"
    )
    if error:
        message += f"; the attempt failed with {error.get('type', '')}: {error.get('message', '')}"
    return storable_error({**described, "message": f"{message}."})


def _fail_for_good(claim: ActivityClaim, error: dict[str, Any], status: str, now: datetime) -> bool:
    """Record a final failure; should even that be refused, an error of plain ASCII, so
    that the row is never left leased, to be tried again at each lease."""
    try:
        return store.complete_activity_task(claim, error=error, status=status, now=now)
    except (DataError, IntegrityError):
        plain = {key: ascii(str(error.get(key, "")))[1:-1] for key in ("type", "message")}
        return store.complete_activity_task(claim, error=plain, status=status, now=now)
