"""What an activity may ask about its own run, from inside the activity."""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class ActivityInfo:
    """The running attempt. `idempotency_key` is stable for one attempt of one command."""

    execution_id: uuid.UUID
    command_seq: int
    attempt: int
    activity_name: str

    @property
    def idempotency_key(self) -> str:
        return f"{self.execution_id}:{self.command_seq}:{self.attempt}"


current: contextvars.ContextVar[ActivityInfo] = contextvars.ContextVar("durable_activity")


def info() -> ActivityInfo:
    """The `ActivityInfo` of the activity being run; `RuntimeError` outside an activity."""
    try:
        return current.get()
    except LookupError:
        raise RuntimeError("activity.info() is only available inside a running activity.") from None
