"""Running one activity attempt and turning what it did into a storable outcome."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async

from .. import activity
from ..payloads import describe_exception, to_json_value
from ..registry import register
from ..store import ActivityClaim

logger = logging.getLogger("django_durable.engine")


def _info(claim: ActivityClaim) -> activity.ActivityInfo:
    return activity.ActivityInfo(
        execution_id=claim.execution_id,
        command_seq=claim.command_seq,
        attempt=claim.attempt,
        activity_name=claim.activity_name,
    )


def _outcome(claim: ActivityClaim, value: Any) -> dict[str, Any]:
    return {"result": to_json_value(value, f"The result of activity {claim.activity_name!r}")}


async def run_activity(claim: ActivityClaim) -> dict[str, Any]:
    """Run the attempt in this process; return `{"result": ...}` or `{"error": {...}}`.

    User code may raise anything; it becomes the attempt's error, never the caller's.
    """
    token = activity.current.set(_info(claim))
    try:
        definition = register.get_activity(claim.activity_name)
        if definition.is_async:
            value = await definition.fn(*claim.args, **claim.kwargs)
        else:
            value = await sync_to_async(definition.fn)(*claim.args, **claim.kwargs)
        return _outcome(claim, value)
    except Exception as exc:
        logger.info("Activity %s attempt %s failed: %r", claim.activity_name, claim.attempt, exc)
        return {"error": describe_exception(exc)}
    finally:
        activity.current.reset(token)
