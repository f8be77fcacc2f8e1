"""Running one activity attempt and turning what it did into a storable outcome."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .. import activity
from ..payloads import describe_exception, to_json_value
from ..registry import register
from ..store import ActivityClaim

logger = logging.getLogger("django_durable.engine")


def execute_activity(claim: ActivityClaim) -> dict[str, Any]:
    """Run the attempt in this thread; return `{"result": ...}` or `{"error": {...}}`.

    Used by the process pool's children and by `run_workflow`. User code may raise
    anything: it becomes the attempt's error, never the caller's.
    """
    info = activity.ActivityInfo(
        execution_id=claim.execution_id,
        command_seq=claim.command_seq,
        attempt=claim.attempt,
        activity_name=claim.activity_name,
    )
    token = activity.current.set(info)
    try:
        definition = register.get_activity(claim.activity_name)
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
