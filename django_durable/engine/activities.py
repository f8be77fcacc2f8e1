"""Running one activity attempt and settling its outcome: result, retry or final error."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import activity, store
from ..concurrency import in_event_loop
from ..conf import durable_setting
from ..constants import ActivityStatus
from ..exceptions import ActivityCanceled
from ..payloads import describe_exception, to_json_value
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

    Used by the process pool's children and by `run_workflow`. User code may raise
    anything: it becomes the attempt's error, never the caller's.
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
    except Exception as exc:
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
    """
    if outcome is RECORDED or outcome.get("recorded"):
        return True
    now = now or timezone.now()
    if "error" not in outcome:
        return store.complete_activity_task(claim, result=outcome["result"], now=now)
    return store.complete_activity_task(
        claim,
        error=outcome["error"],
        retry_at=retry_at(claim, outcome["error"], now),
        status=ActivityStatus.TIMED_OUT if timed_out else ActivityStatus.FAILED,
        now=now,
    )
