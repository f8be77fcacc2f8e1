"""Running one execution to its end inside the calling process, without a worker.

For tests and scripts: activities run inline, timers are fast-forwarded on a virtual
clock, and every step goes through the same store functions as the worker.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta

from asgiref.sync import sync_to_async
from django.utils import timezone

from .. import store
from ..conf import durable_setting
from ..constants import ExecutionStatus
from ..exceptions import WorkflowBlocked
from ..models import WorkflowExecution
from ..observability.metrics import metrics
from .activities import execute_activity, settle_activity
from .sticky import StickyCache
from .workflow_task import run_workflow_task

BATCH = 20


class InlineRunner:
    def __init__(self, execution_id: uuid.UUID, cache: StickyCache | None = None) -> None:
        self.execution_id = execution_id
        if cache is None:
            cache = StickyCache(durable_setting("STICKY_CACHE_SIZE"))
        self.cache = cache
        self.owner = f"inline-{uuid.uuid4().hex[:12]}"
        self.skipped = timedelta(0)
        self.last_waiting_on = "nothing"

    def now(self) -> datetime:
        return timezone.now() + self.skipped

    async def _step(self) -> bool:
        """Run what is due now; True if anything ran."""
        ran = False
        scope = await store.afamily_of(self.execution_id)
        for claim in await store.aclaim_workflow_tasks(
            self.owner, BATCH, now=self.now(), execution_ids=scope
        ):
            result = await run_workflow_task(claim, now=self.now(), cache=self.cache)
            if result.instance is not None:
                self.last_waiting_on = result.instance.waiting_on()
            ran = True
        for claim in await store.aclaim_activity_tasks(
            self.owner, BATCH, now=self.now(), execution_ids=scope
        ):
            began = time.perf_counter()
            outcome = await sync_to_async(execute_activity)(claim)
            metrics().activity_seconds(claim.activity_name, time.perf_counter() - began)
            await sync_to_async(settle_activity)(claim, outcome, now=self.now())
            ran = True
        return ran

    async def run(self) -> WorkflowExecution:
        """Drive the execution until it ends or is parked, and return it."""
        while True:
            if await self._step():
                continue
            execution = await store.aget_execution(self.execution_id)
            if execution.is_terminal or execution.status == ExecutionStatus.BLOCKED:
                return execution
            scope = await store.afamily_of(self.execution_id)
            due = await store.anext_due_at(execution_ids=scope, now=self.now())
            if due is None:
                raise WorkflowBlocked(
                    f"Execution {execution.pk} of {execution.workflow_name!r} waits for "
                    f"{self.last_waiting_on}, and run_workflow() has nobody to send it. "
                    f"Start it with start_workflow() and a worker, or send the signal first."
                )
            gap = due - self.now()
            if gap > timedelta(0):
                self.skipped += gap  # fast-forward to the next timer or retry
            else:
                await asyncio.sleep(0.05)  # leased by someone else for the moment
