"""What an activity may ask about, or report of, its own run, from inside the activity."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ActivityInfo:
    """The running attempt. `idempotency_key` is stable for one attempt of one command.

    `heartbeat_details` are the last details an earlier attempt reported, to resume from.
    """

    execution_id: uuid.UUID
    command_seq: int
    attempt: int
    activity_name: str
    heartbeat_details: Any = None

    @property
    def idempotency_key(self) -> str:
        return f"{self.execution_id}:{self.command_seq}:{self.attempt}"


@dataclass(frozen=True)
class RunningActivity:
    info: ActivityInfo
    beat: Callable[[Any], None]


current: contextvars.ContextVar[RunningActivity] = contextvars.ContextVar("durable_activity")


def _running() -> RunningActivity:
    try:
        return current.get()
    except LookupError:
        raise RuntimeError("This is only available inside a running activity.") from None


def info() -> ActivityInfo:
    """The `ActivityInfo` of the activity being run; `RuntimeError` outside an activity."""
    return _running().info


def heartbeat(details: Any = None) -> None:
    """Report progress (JSON `details`, kept for a retry to resume from) and that it lives.

    Needed for `heartbeat_timeout`; cheap to call often (writes are throttled).

    Raises:
        ActivityCanceled: the attempt should stop (its workflow was canceled, or it lost
            its lease): let it propagate.
    """
    _running().beat(details)
