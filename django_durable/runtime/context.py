"""`WorkflowContext`: everything a workflow may call that is durable or must be deterministic."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..registry import RetryPolicy
from .versioning import DEFAULT_VERSION

if TYPE_CHECKING:
    from .instance import ChildHandle, WorkflowInstance


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

    DEFAULT_VERSION = DEFAULT_VERSION
    """What `get_version` returns for an execution that began before the change."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        self.info: WorkflowInfo = instance.info

    def run_activity(
        self,
        activity: str | Callable,
        *args: Any,
        retry_policy: RetryPolicy | None = None,
        start_to_close_timeout: float | None = None,
        schedule_to_close_timeout: float | None = None,
        heartbeat_timeout: float | None = None,
        queue: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run an activity and return its result.

        Args:
            activity: the activity's registered name or function.
            *args: JSON-serializable positional arguments passed to it.
            retry_policy: this call's retry policy, instead of the activity's own.
            start_to_close_timeout: this call's, instead of the activity's own.
            schedule_to_close_timeout: this call's, instead of the activity's own.
            heartbeat_timeout: this call's, instead of the activity's own.
            queue: the queue whose workers run this call (`--queue`), instead of the
                activity's own `queue`; 1 to 100 characters.
            **kwargs: JSON-serializable keyword arguments passed to it.

        Returns:
            The activity's result, recorded once and replayed afterwards.

        Raises:
            ActivityError: the activity failed for good.
            ActivityNotFound: no activity has that name.
            PayloadError: an argument is not JSON-serializable.
        """
        overrides = {
            "retry_policy": retry_policy,
            "start_to_close_timeout": start_to_close_timeout,
            "schedule_to_close_timeout": schedule_to_close_timeout,
            "heartbeat_timeout": heartbeat_timeout,
            "queue": queue,
        }
        return self._instance.wait(
            self._instance.schedule_activity(activity, args, kwargs, overrides)
        )

    def start_workflow(
        self,
        workflow: str | Callable,
        /,
        *,
        execution_timeout: float | None = None,
        **inputs: Any,
    ) -> ChildHandle:
        """Start a child workflow and return its handle at once (no await needed).

        The child's execution id is `handle.execution_id`; its result is `handle.result()`
        (awaitable in an async workflow). When this workflow ends, its unfinished children
        are canceled.

        Raises:
            WorkflowNotFound: no workflow has that name.
            TypeError, PayloadError: the input does not fit it or is not JSON.
        """
        return self._instance.start_child(workflow, inputs, execution_timeout)

    def run_workflow(
        self,
        workflow: str | Callable,
        /,
        *,
        execution_timeout: float | None = None,
        **inputs: Any,
    ) -> Any:
        """Run a child workflow and return its result.

        Raises:
            WorkflowFailed, WorkflowCanceled, WorkflowTimedOut: the child ended that way.
        """
        handle = self._instance.start_child(workflow, inputs, execution_timeout)
        return handle.result()

    def sleep(self, seconds: float) -> Any:
        """Wait `seconds` on a durable timer, which holds no thread or process meanwhile.

        Args:
            seconds: at most 100 years (`MAX_DURATION_SECONDS`); a negative value counts as 0.

        Raises:
            ValueError: `seconds` is not finite or is over 100 years (raised here, before
                anything is recorded, so the workflow may catch it).
            TypeError: `seconds` is not a number.
        """
        return self._instance.wait(self._instance.start_sleep(seconds))

    def wait_signal(self, name: str, timeout: float | None = None) -> Any:
        """Return the payload of the next signal called `name`; `None` if `timeout` passes first.

        Signals of one name are delivered in the order they were sent, one per call.

        Raises:
            ValueError, TypeError: `timeout` is out of range or not a number, as for `sleep`.
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

    def patched(self, patch_id: str) -> bool:
        """Whether this execution takes the new code behind `patch_id`; replaces a bare `if`.

        Solves changing a workflow while executions that began under the old code are still
        running: write `if ctx.patched("v2-receipt"): <new code> else: <old code>`. New
        executions (and running ones that reach this point for the first time) record a
        marker and take the new branch; an execution whose history shows it passed this
        point without the marker keeps the old branch, so its replay stays deterministic.
        Synchronous: no `await`, in `async def` and plain `def` workflows alike.

        Args:
            patch_id: a name for this change, unique within the workflow.

        Returns:
            True to run the new code, False to run the old one. Later calls with the same
            `patch_id` in this execution return the same answer.
        """
        return self._instance.patched(patch_id)

    def deprecate_patch(self, patch_id: str) -> None:
        """Retire `patch_id` once no running execution can still take its old branch.

        Solves deleting the old branch: replace `if ctx.patched(id): new else: old` with
        `ctx.deprecate_patch(id)` followed by the new code alone. Replays accept histories
        with or without the marker; new executions still record it (marked deprecated).
        Keep the call until every execution that recorded the marker has finished.

        Args:
            patch_id: the id previously passed to `ctx.patched()`.
        """
        self._instance.patched(patch_id, deprecated=True)

    def get_version(self, change_id: str, min_supported: int, max_supported: int) -> int:
        """The version of `change_id` this execution runs; for changes made more than once.

        Solves evolving one piece of a workflow through several versions while executions
        of each are still running: branch on the returned number. New executions record
        `max_supported`; a replay returns the version recorded at this point, or
        `DEFAULT_VERSION` (-1) when the execution began before the change existed. Raise
        `min_supported` once no running execution uses the older versions.

        Args:
            change_id: a name for this change, unique within the workflow.
            min_supported: the oldest version this code still runs (-1 keeps the original).
            max_supported: the version new executions get.

        Returns:
            The execution's version, between `min_supported` and `max_supported`.

        Raises:
            NonDeterminismError: the recorded version is outside that range; the execution
                is parked until code supporting its version is deployed.
        """
        return self._instance.get_version(change_id, min_supported, max_supported)
