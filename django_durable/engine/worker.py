"""The worker: one asyncio loop that claims workflow tasks and activities and runs them.

Workflow tasks run on the loop; activities run in the process pool. On PostgreSQL the loop
sleeps until a NOTIFY, the next timer, or the safety sweep; elsewhere it polls every tick.
Side tasks (claiming, lease renewal, listening) run under one supervisor: the first one to
fail stops the worker loudly instead of leaving it deaf or leaseless.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field

from django.db import DatabaseError
from django.utils import timezone

from .. import store
from ..conf import durable_setting
from ..store import ActivityClaim, WorkflowClaim
from ..store.db import alias, supports_notify
from .listener import Listener
from .pool import ActivityPool
from .sticky import StickyCache
from .workflow_task import run_workflow_task

logger = logging.getLogger("django_durable.worker")

# An attempt whose process died is retried as a new attempt, up to this many in a row.
LOST_ATTEMPTS_LIMIT = 3


@dataclass
class WorkerOptions:
    batch: int = 20
    tick: float = 0.2
    procs: int = 4
    queues: list[str] = field(default_factory=list)
    grace: float = 30.0


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(self, options: WorkerOptions, worker_id: str | None = None) -> None:
        self.options = options
        self.id = worker_id or new_worker_id()
        self.cache = StickyCache(durable_setting("STICKY_CACHE_SIZE"))
        self.uses_notify = supports_notify()
        self.activities: dict[int, tuple[ActivityClaim, asyncio.Task]] = {}
        self.listener: Listener | None = None
        self.pool: ActivityPool | None = None
        self._wake: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop claiming and shut down gracefully (safe to call from a signal handler)."""
        if self._stopping is not None:
            self._stopping.set()
            self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()

    async def run(self) -> None:
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        await store.aregister_worker(self.id, self.options.queues)
        unparked = await store.aunpark_executions()
        if unparked:
            logger.warning("Retrying %d parked execution(s) with this code.", unparked)
        self.pool = ActivityPool(self.options.procs)
        self.pool.warm_up()
        side_tasks = [
            asyncio.create_task(self._claim_loop(), name="claim"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
        ]
        if self.uses_notify:
            self.listener = Listener(alias(), self._wake)
            side_tasks.append(asyncio.create_task(self.listener.run(), name="listener"))
        stop = asyncio.create_task(self._stopping.wait(), name="stop")
        try:
            done, _ = await asyncio.wait([stop, *side_tasks], return_when=asyncio.FIRST_COMPLETED)
            self._stopping.set()
            self._wake.set()
            claim_task = side_tasks[0]
            if claim_task not in done:
                await claim_task  # it finishes its current round, claiming nothing more
            await asyncio.shield(self._shutdown())
            for task in done:
                if task is not stop and task.exception() is not None:
                    raise task.exception()
        finally:
            for task in [stop, *side_tasks]:
                task.cancel()
            self.pool.kill()

    async def _shutdown(self) -> None:
        """Let in-flight activities finish within the grace period; release the rest."""
        running = [task for _, task in self.activities.values()]
        if running:
            logger.warning(
                "Waiting up to %.0f s for %d activit(ies).", self.options.grace, len(running)
            )
            await asyncio.wait(running, timeout=self.options.grace)
        left = [claim.task_id for claim, task in self.activities.values() if not task.done()]
        if left:
            released = await store.arelease_activity_tasks(self.id, left)
            logger.warning("Released %d unfinished activit(ies) for other workers.", released)
            for _, task in list(self.activities.values()):
                task.cancel()
        await store.abeat_worker(self.id, stopped=True)

    # -- claiming --------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while not self.stopping:
            self._wake.clear()
            try:
                if await self.claim_once():
                    continue
                await self._sleep_until_due()
            except DatabaseError as exc:
                logger.error("Database error while claiming (%s); retrying in 1 s", exc)
                await asyncio.sleep(1.0)

    async def claim_once(self) -> bool:
        """Start what is due now; True if anything was claimed."""
        free = self.options.procs - len(self.activities)
        activity_claims: list[ActivityClaim] = []
        if free > 0:
            activity_claims = await store.aclaim_activity_tasks(
                self.id, min(self.options.batch, free), queues=self.options.queues or None
            )
        for claim in activity_claims:
            task = asyncio.create_task(self._run_activity(claim))
            self.activities[claim.task_id] = (claim, task)
        workflow_claims = await store.aclaim_workflow_tasks(self.id, self.options.batch)
        if workflow_claims:
            await asyncio.gather(*(self._run_workflow_task(claim) for claim in workflow_claims))
        return bool(activity_claims or workflow_claims)

    async def _sleep_until_due(self) -> None:
        free = self.options.procs > len(self.activities)
        due = await store.anext_due_at(queues=self.options.queues or None, activities=free)
        if self.uses_notify and self.listener is not None and self.listener.connected.is_set():
            cap = durable_setting("SWEEP_SECONDS")
        elif self.uses_notify:
            cap = max(self.options.tick, 1.0)  # listener down: fall back to a slow poll
        else:
            cap = self.options.tick
        timeout = cap
        if due is not None:
            timeout = min(cap, max(0.0, (due - timezone.now()).total_seconds()))
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass

    # -- running ---------------------------------------------------------------------------

    async def _run_workflow_task(self, claim: WorkflowClaim) -> None:
        try:
            await run_workflow_task(claim, cache=self.cache)
        except Exception:
            logger.exception(
                "Workflow task of %s failed; its lease will expire", claim.execution_id
            )

    async def _run_activity(self, claim: ActivityClaim) -> None:
        try:
            outcome = await self.pool.run(claim)
            if outcome is None and claim.attempt < LOST_ATTEMPTS_LIMIT:
                await store.arelease_activity_tasks(self.id, [claim.task_id])
                return
            if outcome is None:
                outcome = {
                    "error": {
                        "type": "django_durable.ActivityProcessDied",
                        "message": f"The activity's process died {claim.attempt} times in a row.",
                        "traceback": "",
                    }
                }
            if not await store.acomplete_activity_task(claim, **outcome):
                logger.warning(
                    "Discarded the result of %s attempt %s: its lease was lost.",
                    claim.activity_name,
                    claim.attempt,
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Recording activity %s failed; its lease will expire", claim.task_id)
        finally:
            self.activities.pop(claim.task_id, None)
            self._wake.set()

    async def _heartbeat_loop(self) -> None:
        every = durable_setting("LEASE_SECONDS") / 3
        while True:
            await asyncio.sleep(every)
            held = [claim.task_id for claim, _ in self.activities.values()]
            try:
                if held:
                    await store.aextend_activity_leases(self.id, held)
                await store.abeat_worker(self.id)
            except DatabaseError as exc:
                logger.error("Database error while renewing leases: %s", exc)
