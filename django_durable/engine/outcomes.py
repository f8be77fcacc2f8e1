"""Recording activity outcomes behind the process pool, many per transaction.

A process slot is free the moment its attempt returns: the outcome joins a queue, and one
writer records everything queued in one transaction (`store.record_activity_outcomes`).
While a transaction is in flight the next batch gathers, so batches grow with the load and
a lone outcome is written at once. Nothing is acknowledged before its transaction commits:
the attempt keeps its lease (renewed by the worker) until then, and a crash before the
commit only loses what a lease expiry brings back.

A batch the database refuses (`DataError`, `IntegrityError`) is recorded again one outcome
at a time (`settle_activity`), so a value that cannot be stored fails only its own attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, DataError, IntegrityError

from .. import store
from ..observability.logs import about
from ..observability.metrics import metrics
from ..store import ActivityClaim, TaskInputs, WorkflowClaim
from ..store.twins import async_twin
from .activities import attempt_outcome, outcome_of, settle_activity

logger = logging.getLogger(__name__)
asettle_activity = async_twin(settle_activity)

MAX_BATCH = 500  # outcomes in one transaction
WRITE_ATTEMPTS = 5  # a restarting database gets about this many seconds to come back


@dataclass
class _Pending:
    claim: ActivityClaim
    outcome: dict[str, Any]  # as the attempt returned it: {"result": ...} or {"error": ...}
    timed_out: bool
    recorded: asyncio.Future


class OutcomeRecorder:
    """The queue of finished attempts and the one writer that records them in batches.

    `held_here()` names the executions this worker holds in memory: their next workflow
    task is leased to it in the outcome's transaction and handed to `continue_here`.
    """

    def __init__(
        self,
        held_here: Callable[[Collection[uuid.UUID]], Collection[uuid.UUID]],
        continue_here: Callable[[list[WorkflowClaim], TaskInputs], None],
    ) -> None:
        self._held_here = held_here
        self._continue_here = continue_here
        self._queue: list[_Pending] = []
        self._ready = asyncio.Event()
        self.batches = 0
        self.recorded = 0

    def add(
        self, claim: ActivityClaim, outcome: dict[str, Any], *, timed_out: bool = False
    ) -> asyncio.Future:
        """Queue an outcome; the future resolves once its transaction committed: True if
        recorded, False if discarded (the attempt was no longer current), None if the
        database stayed away (the lease expires and the attempt runs again)."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(claim, outcome, timed_out, future))
        self._ready.set()
        return future

    async def run(self) -> None:
        """Write batches for ever (the worker cancels this once nothing is left to write)."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                await self._write(batch)

    @property
    def idle(self) -> bool:
        return not self._queue

    async def _write(self, batch: list[_Pending]) -> None:
        outcomes = [outcome_of(p.claim, p.outcome, timed_out=p.timed_out) for p in batch]
        held = self._held_here({p.claim.execution_id for p in batch})
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                began = time.perf_counter()
                done = await store.arecord_activity_outcomes(outcomes, continue_here=held)
            except (DataError, IntegrityError):
                await self._write_one_by_one(batch)
                return
            except DatabaseError as exc:
                if attempt == WRITE_ATTEMPTS:
                    logger.error("Could not record %d outcome(s) (%s).", len(batch), exc)
                    for pending in batch:
                        metrics().activity_attempt(pending.claim.activity_name, "unrecorded")
                        _resolve(pending.recorded, None)
                    return
                await asyncio.sleep(1.0)
                continue
            self.batches += 1
            self.recorded += len(batch)
            metrics().record("activity", len(batch), time.perf_counter() - began)
            for pending, outcome, recorded in zip(batch, outcomes, done.recorded, strict=True):
                metrics().activity_attempt(
                    pending.claim.activity_name, attempt_outcome(outcome.status, recorded)
                )
                _resolve(pending.recorded, recorded)
            if done.continued:
                self._continue_here(done.continued, done.inputs)
            return

    async def _write_one_by_one(self, batch: list[_Pending]) -> None:
        for pending in batch:
            try:
                recorded = await asettle_activity(
                    pending.claim, pending.outcome, timed_out=pending.timed_out
                )
            except DatabaseError as exc:
                logger.error(
                    "Could not record an outcome of %s attempt %s (%s).",
                    pending.claim.activity_name,
                    pending.claim.attempt,
                    exc,
                    extra=about(pending.claim),
                )
                metrics().activity_attempt(pending.claim.activity_name, "unrecorded")
                recorded = None
            _resolve(pending.recorded, recorded)


def _resolve(future: asyncio.Future, value: bool | None) -> None:
    if not future.done():
        future.set_result(value)
