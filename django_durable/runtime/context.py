"""`WorkflowContext`: everything a workflow may call that is durable or must be deterministic."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .instance import WorkflowInstance


@dataclass(frozen=True)
class WorkflowInfo:
    """Facts about the running execution, the same on every replay."""

    execution_id: uuid.UUID
    workflow_name: str
    workflow_id: str | None = None
    parent_id: uuid.UUID | None = None


class WorkflowContext:
    """The first argument of every workflow.

    In an `async def` workflow each durable method returns an awaitable; in a plain `def`
    workflow the same method blocks (without a thread) and returns the value.
    """

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        self.info: WorkflowInfo = instance.info

    def run_activity(self, activity: str | Callable, *args: Any, **kwargs: Any) -> Any:
        """Run an activity and return its result.

        Args:
            activity: the activity's registered name or function.
            *args, **kwargs: JSON-serializable arguments passed to it.

        Returns:
            The activity's result, recorded once and replayed afterwards.

        Raises:
            ActivityError: the activity failed for good.
            ActivityNotFound: no activity has that name.
            PayloadError: an argument is not JSON-serializable.
        """
        return self._instance.wait(self._instance.schedule_activity(activity, args, kwargs))

    def sleep(self, seconds: float) -> Any:
        """Wait `seconds` on a durable timer, which holds no thread or process meanwhile."""
        return self._instance.wait(self._instance.start_sleep(seconds))

    def wait_signal(self, name: str, timeout: float | None = None) -> Any:
        """Return the payload of the next signal called `name`; `None` if `timeout` passes first.

        Signals of one name are delivered in the order they were sent, one per call.
        """
        return self._instance.wait(self._instance.wait_signal(name, timeout))

    def now(self) -> datetime:
        """The current time, as recorded when this workflow task started; use it for `now()`."""
        return datetime.fromtimestamp(self._instance.loop.time(), tz=UTC)

    def random(self) -> random.Random:
        """A `random.Random` seeded by the execution id; use it instead of the `random` module."""
        return self._instance.random

    def uuid4(self) -> uuid.UUID:
        """A version-4 UUID drawn from `random()`; use it instead of `uuid.uuid4()`."""
        return uuid.UUID(int=self._instance.random.getrandbits(128), version=4)
