"""Running one activity attempt and settling its outcome: result, retry or final error."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from .. import activity, store
from ..concurrency import in_event_loop
from ..conf import durable_setting
from ..constants import ActivityStatus
from ..exceptions import ActivityCanceled
from ..payloads import describe_exception, storable_error, to_json_value
from ..registry import RetryPolicy, register
from ..store import ActivityClaim
from ..store.db import alias

logger = logging.getLogger("django_durable.engine")

# An outcome saying the attempt recorded its own completion (transactional activities).
RECORDED = {"recorded": True}


class _CompletionRejected(Exception):
    """The attempt lost its lease: roll its transaction back."""


def _outside_loop(fn, *args):
    """Run a sync database call; from inside an `async def` activity, in a helper thread."""
    if not in_event_loop():
        return fn(*args)
    box: dict[str, Any] = {}

    def target():
        try:
            box["value"] = fn(*args)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


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

    Used by the activity processes and by `run_workflow`. User code may raise anything,
    `BaseException` included: it becomes the attempt's error, never the caller's.
    """
    info = activity.ActivityInfo(
        execution_id=claim.execution_id,
        command_seq=claim.command_seq,
        attempt=claim.attempt,
        activity_name=claim.activity_name,
        heartbeat_details=claim.heartbeat_details,
    )
    token = activity.current.set(activity.RunningActivity(info, _Heartbeat(claim)))
    try:
        definition = register.get_activity(claim.activity_name)
        if claim.options.get("transactional"):
            return _execute_transactionally(claim, definition)
        if definition.is_async:
            value = asyncio.run(definition.fn(*claim.args, **claim.kwargs))
        else:
            value = definition.fn(*claim.args, **claim.kwargs)
        return {"result": to_json_value(value, f"The result of activity {claim.activity_name!r}")}
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the attempt's error
        logger.info("Activity %s attempt %s failed: %r", claim.activity_name, claim.attempt, exc)
        return {"error": describe_exception(exc)}
    finally:
        activity.current.reset(token)


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
            "Rolled back %s attempt %s: its lease was lost.", claim.activity_name, claim.attempt
        )
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
    if outcome is RECORDED or outcome.get("recorded"):
        return True
    now = now or timezone.now()
    status = ActivityStatus.TIMED_OUT if timed_out else ActivityStatus.FAILED
    if "error" not in outcome:
        try:
            return store.complete_activity_task(claim, result=outcome["result"], now=now)
        except (DataError, IntegrityError) as exc:
            return _fail_for_good(claim, _refused(claim, "result", exc, {}), status, now)
    error = outcome["error"]
    try:
        return store.complete_activity_task(
            claim, error=error, retry_at=retry_at(claim, error, now), status=status, now=now
        )
    except (DataError, IntegrityError) as exc:
        return _fail_for_good(claim, _refused(claim, "error", exc, error), status, now)


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
