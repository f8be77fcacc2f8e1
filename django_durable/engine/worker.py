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
import signal
import socket
import time
import uuid
from collections import deque
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError
from django.utils import timezone

from .. import store
from ..conf import durable_setting
from ..constants import ActivityStatus, EventKind
from ..exceptions import ActivityProcessDied, ActivityTimeoutError
from ..observability.logs import about
from ..observability.metrics import metrics, serve_metrics
from ..payloads import describe_exception
from ..registry import register
from ..runtime import Event
from ..store import ActivityClaim, TaskInputs, WorkflowClaim
from ..store.db import supports_notify
from . import telemetry
from .listener import EVERYTHING, Listener, listen_conninfo
from .outcomes import OutcomeRecorder
from .pool import ActivityPool, ProcessLost, runs_async
from .sticky import StickyCache
from .workflow_task import run_workflow_tasks
from .workflow_thread import WorkflowThread

logger = logging.getLogger(__name__)


DATABASE_THREADS = 4  # transactions in flight at once, each on its own connection
POOL_READY_SECONDS = 30.0  # a child that takes longer (import error?) is waited for no more
WORKFLOW_BATCHES = 2  # batches of workflow tasks in flight: one records while one runs
DUE_QUERY_SECONDS = 1.0  # an idle worker asks the database what is due at most this often
WATCHDOG_SECONDS = 0.2  # how often running activities are checked against their timeouts
STATES_SECONDS = 0.5  # how often their heartbeats and cancellation are read from the database


AttemptKey = tuple[int, int]  # (task id, attempt): a re-claimed task is a new attempt


@dataclass
class RunningAttempt:
    """An activity attempt this worker holds: waiting for room in the pool (`task` None),
    running in a child process, or waiting for its outcome's transaction; with what the
    watchdog needs to stop it."""

    claim: ActivityClaim
    is_async: bool
    task: asyncio.Task | None = None
    started_at: datetime | None = None  # when it went to the pool (heartbeat timeouts)
    deadline: float | None = None  # monotonic
    deadline_reason: str = ""
    heartbeat_timeout: float | None = None
    doomed: str = ""  # why the worker stops it: "timeout: ...", "canceled" or "superseded"
    cancel_noticed: float | None = None


DB_WRITE_ATTEMPTS = 5  # a restarting database gets about this many seconds to come back


async def _retrying(what: str, write, *args, **kwargs):
    """A write that survives a database restart; None if it never got through.

    Giving up loses nothing: what it would have written is redone when its lease expires.
    """
    for attempt in range(1, DB_WRITE_ATTEMPTS + 1):
        try:
            return await write(*args, **kwargs)
        except DatabaseError as exc:
            if attempt == DB_WRITE_ATTEMPTS:
                logger.error("Could not %s (%s); leases will expire instead.", what, exc)
                return None
            await asyncio.sleep(1.0)


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "exit code unknown"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def _deadline(claim: ActivityClaim) -> tuple[float | None, str]:
    limits = []
    now = time.monotonic()
    if seconds := claim.options.get("start_to_close_timeout"):
        limits.append((now + seconds, f"start_to_close_timeout of {seconds:g} s"))
    if seconds := claim.options.get("schedule_to_close_timeout"):
        left = (claim.scheduled_at - timezone.now()).total_seconds() + seconds
        limits.append((now + left, f"schedule_to_close_timeout of {seconds:g} s"))
    return min(limits) if limits else (None, "")


@dataclass
class WorkerOptions:
    batch: int = 100
    tick: float = 0.2
    procs: int = 4
    queues: list[str] = field(default_factory=list)
    grace: float = 30.0
    cancel_grace: float = 5.0  # seconds a canceled activity gets to stop on its own


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(self, options: WorkerOptions, worker_id: str | None = None) -> None:
        self.options = options
        self.id = worker_id or new_worker_id()
        self.cache = StickyCache(durable_setting("STICKY_CACHE_SIZE"))
        self.uses_notify = supports_notify()
        self.activities: dict[AttemptKey, RunningAttempt] = {}  # every attempt held here
        self.pending: deque[AttemptKey] = deque()  # held, waiting for room in the pool
        self.workflow_claims: deque[WorkflowClaim] = deque()  # claimed, not yet running
        self.claimed_inputs = TaskInputs()  # what was read with them, by execution id
        self.workflow_tasks: set[asyncio.Task] = set()  # batches running
        self.listener: Listener | None = None
        self.pool: ActivityPool | None = None
        self.recorder: OutcomeRecorder | None = None
        self.workflow_thread = WorkflowThread(durable_setting("WORKFLOW_TASK_TIMEOUT"))
        # Rolling deploys: claim only what this code can run; the rest waits for a worker
        # that knows it, instead of being parked here as unknown.
        self.workflow_names = sorted(register.workflows)
        self.activity_names = sorted(register.activities)
        self._runnable_activities = frozenset(self.activity_names)
        self._wake: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        # Whether claimable rows may be waiting: set by a NOTIFY of their kind, a due time,
        # a sweep or a polling tick; cleared by a claim that found fewer than it asked for.
        # So a wake-up about activities does not also query for workflow tasks, and back.
        self._maybe_activities = True
        self._maybe_workflows = True
        self._claimed_at = 0.0  # monotonic time of the last claim query
        # The earliest due time known (a timer, a retry, a lease expiring): queried from the
        # database at most every DUE_QUERY_SECONDS unless a NOTIFY came, and lowered at once
        # by the timers this worker's own workflow tasks set.
        self._due_at: datetime | None = None
        self._due_queried = float("-inf")

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
        store.use_database_threads(
            ThreadPoolExecutor(max_workers=DATABASE_THREADS, thread_name_prefix="durable-db")
        )
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._serve_metrics()
        await store.aregister_worker(
            self.id,
            self.options.queues,
            workflows=self.workflow_names,
            activities=self.activity_names,
        )
        unparked = await store.aunpark_executions()
        if unparked:
            logger.warning("Retrying %d parked execution(s) with this code.", unparked)
        self.pool = ActivityPool(self.options.procs)
        self.pool.start()
        await self._pool_ready()
        self.recorder = OutcomeRecorder(self._held_in_memory, self._continue_here)
        recorder = asyncio.create_task(self.recorder.run(), name="recorder")
        side_tasks = [
            asyncio.create_task(self._claim_loop(), name="claim"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self._watchdog_loop(), name="watchdog"),
        ]
        if self.uses_notify:
            self.listener = Listener(listen_conninfo(), self._wake)
            side_tasks.append(asyncio.create_task(self.listener.run(), name="listener"))
        stop = asyncio.create_task(self._stopping.wait(), name="stop")
        try:
            done, _ = await asyncio.wait(
                [stop, recorder, *side_tasks], return_when=asyncio.FIRST_COMPLETED
            )
            self._stopping.set()
            self._wake.set()
            claim_task = side_tasks[0]
            if claim_task not in done:
                await claim_task  # it finishes its current round, claiming nothing more
            while self.workflow_tasks:  # a batch may hand on the claims that came with it
                await asyncio.wait(list(self.workflow_tasks))
            await asyncio.shield(self._shutdown())
            for task in done:
                if task is not stop and task.exception() is not None:
                    raise task.exception()
        finally:
            for task in [stop, recorder, *side_tasks]:
                task.cancel()
            self.pool.kill()
            self.workflow_thread.close()

    def _serve_metrics(self) -> None:
        """Serve the metrics if the settings name a port; a port taken (another worker on
        this host, during a deploy) costs the metrics of this worker, not the worker."""
        metrics().watch_due_work(telemetry.read_due_work)
        try:
            port = serve_metrics()
        except OSError as exc:
            logger.warning("Cannot serve metrics (%s); running without them.", exc)
            return
        if port is not None:
            logger.info("Serving metrics on port %d.", port)

    async def _pool_ready(self) -> None:
        """Wait (a while) for the activity processes to be up before claiming: an attempt
        this worker holds should start at once, not wait for Django to set up."""
        deadline = time.monotonic() + POOL_READY_SECONDS
        while self.pool.room(False) < self.options.procs and time.monotonic() < deadline:  # noqa: ASYNC110 (the pool has no readiness event)
            await asyncio.sleep(0.02)

    async def _shutdown(self) -> None:
        """Let in-flight activities finish within the grace period; release the rest."""
        unstarted = [self.activities[key].claim.task_id for key in self.pending]
        for key in self.pending:
            self.activities.pop(key, None)
        self.pending.clear()
        running = [attempt.task for attempt in self.activities.values() if attempt.task]
        if running:
            logger.warning(
                "Waiting up to %.0f s for %d activit(ies).", self.options.grace, len(running)
            )
            await asyncio.wait(running, timeout=self.options.grace)
        left = unstarted + [
            a.claim.task_id for a in self.activities.values() if a.task and not a.task.done()
        ]
        if left:
            # Cut off by the operator, not failed: they run again as the same attempt.
            released = await _retrying(
                "release unfinished activities",
                store.arelease_activity_tasks,
                self.id,
                left,
                uncharged=True,
            )
            if released is not None:
                logger.warning("Released %d unfinished activit(ies) for other workers.", released)
            for attempt in list(self.activities.values()):
                if attempt.task is not None:
                    attempt.task.cancel()
        await _retrying("record the worker's stop", store.abeat_worker, self.id, stopped=True)

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

    def _activity_room(self) -> tuple[int, int]:
        """How many more activities of each kind (def, async def) this worker takes on:
        the pool's free room, and as many again waiting here, so no slot waits for a claim
        round trip."""
        waiting = [self.activities[key].is_async for key in self.pending]
        sync_room = self.pool.room(False) + self.options.procs - waiting.count(False)
        async_room = self.pool.room(True) + self.options.batch - waiting.count(True)
        return max(0, sync_room), max(0, async_room)

    def _note_notifications(self) -> None:
        busy = self.workflow_tasks or self.workflow_claims or self.activities
        if busy and time.monotonic() - self._claimed_at >= self.options.tick:
            # Busy workers skip the due-time query (a finishing batch wakes them anyway):
            # timers and retries that came due meanwhile are found by this periodic claim.
            self._maybe_activities = self._maybe_workflows = True
        if self.listener is None:
            return
        kinds = self.listener.take_kinds()
        if kinds:
            self._due_queried = float("-inf")  # what is due may have changed elsewhere
        if EVERYTHING in kinds or "activity" in kinds:
            self._maybe_activities = True
        if EVERYTHING in kinds or "workflow" in kinds:
            self._maybe_workflows = True

    async def claim_once(self) -> bool:
        """Claim what is due now, activities and workflow tasks at once (two transactions
        on two database threads); True if anything was claimed."""
        self._note_notifications()
        activity_claims, workflow_claims = await asyncio.gather(
            self._claim_activities(), self._claim_workflow_tasks()
        )
        self._hold_activities(activity_claims)
        claims, inputs = workflow_claims
        self._continue_here(claims, inputs)
        self._report_queues()
        return bool(activity_claims or claims)

    def _report_queues(self) -> None:
        report = metrics()
        report.queue_depth("activity", len(self.pending))
        report.queue_depth("activity_running", len(self.activities) - len(self.pending))
        report.queue_depth("workflow_task", len(self.workflow_claims))

    async def _claim_activities(self) -> list[ActivityClaim]:
        sync_room, async_room = self._activity_room()
        if not self._maybe_activities or not (sync_room or async_room):
            return []
        names = [
            name
            for name in self.activity_names
            if (async_room if register.get_activity(name).is_async else sync_room)
        ]
        if not names:
            return []
        limit = min(self.options.batch, sync_room + async_room)
        began = time.perf_counter()
        claims = await store.aclaim_activity_tasks(
            self.id, limit, queues=self.options.queues or None, activity_names=names
        )
        metrics().claim("activity", len(claims), time.perf_counter() - began)
        self._maybe_activities = len(claims) == limit
        self._claimed_at = time.monotonic()
        return claims

    async def _claim_workflow_tasks(self) -> tuple[list[WorkflowClaim], TaskInputs]:
        """Claim workflow tasks with what they will read (in the claim's transaction)."""
        # Refill in batches: claiming one task per finished one would cost a query each.
        room = self.options.batch - len(self.workflow_claims)
        if not self._maybe_workflows or self.stopping or room < self.options.batch // 2:
            return [], TaskInputs()
        began = time.perf_counter()
        claims, inputs = await store.aclaim_workflow_tasks_with_inputs(
            self.id, room, held=self.cache.epochs(), workflow_names=self.workflow_names
        )
        metrics().claim("workflow_task", len(claims), time.perf_counter() - began)
        self._maybe_workflows = len(claims) == room
        self._claimed_at = time.monotonic()
        return claims, inputs

    async def _sleep_until_due(self) -> None:
        sync_room, async_room = self._activity_room()
        idle = not self.workflow_tasks and not self.workflow_claims
        # Else the next batch to finish wakes the loop anyway.
        if idle and time.monotonic() - self._due_queried >= DUE_QUERY_SECONDS:
            self._due_at = await store.anext_due_at(
                queues=self.options.queues or None,
                activities=bool(sync_room or async_room),
                workflow_names=self.workflow_names,
                activity_names=self.activity_names,
            )
            self._due_queried = time.monotonic()
        due = self._due_at if idle else None
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
        except TimeoutError:  # something is due, or it is time to sweep (or poll)
            self._maybe_activities = self._maybe_workflows = True
            self._due_at, self._due_queried = None, float("-inf")

    # -- workflow tasks --------------------------------------------------------------------

    def _held_in_memory(self, execution_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """The executions among these whose workflow this worker holds in its cache."""
        if self.stopping:
            return set()
        return {pk for pk in execution_ids if pk in self.cache}

    def _continue_here(self, claims: list[WorkflowClaim], inputs: TaskInputs) -> None:
        """Queue claimed workflow tasks, with what was read for them, and start a batch if
        there is room for one."""
        self.workflow_claims.extend(claims)
        self.claimed_inputs.histories.update(inputs.histories)
        self.claimed_inputs.inboxes.update(inputs.inboxes)
        self._start_workflow_batches()

    def _start_workflow_batches(self) -> None:
        while self.workflow_claims and len(self.workflow_tasks) < WORKFLOW_BATCHES:
            size = min(len(self.workflow_claims), self.options.batch)
            claims = [self.workflow_claims.popleft() for _ in range(size)]
            inputs = TaskInputs()
            for claim in claims:
                pk = claim.execution_id
                if pk in self.claimed_inputs.histories:
                    inputs.histories[pk] = self.claimed_inputs.histories.pop(pk)
                if pk in self.claimed_inputs.inboxes:
                    inputs.inboxes[pk] = self.claimed_inputs.inboxes.pop(pk)
            task = asyncio.create_task(self._run_workflow_batch(claims, inputs))
            self.workflow_tasks.add(task)
            task.add_done_callback(self._workflow_batch_done)

    def _workflow_batch_done(self, task: asyncio.Task) -> None:
        self.workflow_tasks.discard(task)
        self._start_workflow_batches()
        self._wake.set()

    async def _run_workflow_batch(self, claims: list[WorkflowClaim], inputs: TaskInputs) -> None:
        try:
            results = await run_workflow_tasks(
                claims,
                cache=self.cache,
                thread=self.workflow_thread,
                lease_activities=self._lease_activities(),
                inputs=inputs,
            )
        except asyncio.CancelledError:
            raise
        except BaseException:  # whatever it was, it must not end the worker
            logger.exception("A batch of %d workflow task(s) failed; leases expire", len(claims))
            return
        self._hold_activities([claim for result in results for claim in result.activities])
        for result in results:
            if result.next_wake_at is not None and (
                self._due_at is None or result.next_wake_at < self._due_at
            ):
                self._due_at = result.next_wake_at

    def _lease_activities(self):
        """Which activities scheduled by a batch this worker runs itself (inserted leased to
        it): those its code and queues can run, while it has room for them."""
        rooms = dict(zip((False, True), self._activity_room(), strict=True))

        def choose(claim: WorkflowClaim, events: list[Event]) -> set[int]:
            taken = set()
            if self.stopping:
                return taken
            for event in events:
                if event.kind != EventKind.ACTIVITY_SCHEDULED:
                    continue
                if event.name not in self._runnable_activities:
                    continue
                queue = event.data.get("queue", "default")
                if self.options.queues and queue not in self.options.queues:
                    continue
                is_async = _is_async(event.name, event.data.get("options", {}))
                if rooms[is_async] > 0:
                    rooms[is_async] -= 1
                    taken.add(event.command_seq)
            return taken

        return choose

    # -- activities ------------------------------------------------------------------------

    def _hold_activities(self, claims: list[ActivityClaim]) -> None:
        """Take on claimed (or locally leased) attempts and start what the pool has room for."""
        for claim in claims:
            for key, older in self.activities.items():
                if key[0] == claim.task_id:  # our lease lapsed and we took it back: a new
                    older.doomed = "superseded"  # attempt runs, the old one's outcome is void
            key = (claim.task_id, claim.attempt)
            self.activities[key] = RunningAttempt(claim=claim, is_async=runs_async(claim))
            self.pending.append(key)
        self._start_activities()

    def _start_activities(self) -> None:
        """Hand waiting attempts to the pool while it has room for them: `def` ones first,
        since an idle process has room for either kind."""
        for is_async in (False, True):
            waiting: deque[AttemptKey] = deque()
            while self.pending:
                key = self.pending.popleft()
                attempt = self.activities.get(key)
                if attempt is None:
                    continue
                if attempt.doomed:  # superseded before it started: its newer attempt runs
                    del self.activities[key]
                    continue
                if attempt.is_async != is_async or self.pool.room(is_async) <= 0:
                    waiting.append(key)
                    continue
                attempt.deadline, attempt.deadline_reason = _deadline(attempt.claim)
                attempt.heartbeat_timeout = attempt.claim.options.get("heartbeat_timeout")
                attempt.started_at = timezone.now()
                if attempt.claim.attempt == 1:  # a retry's due time is not in its claim
                    lag = attempt.started_at - attempt.claim.scheduled_at
                    metrics().due_lag("activity", lag.total_seconds())
                outcome = self.pool.submit(key, attempt.claim)
                attempt.task = asyncio.create_task(self._run_activity(key, attempt.claim, outcome))
            self.pending = waiting

    async def _run_activity(
        self, key: AttemptKey, claim: ActivityClaim, running: asyncio.Future
    ) -> None:
        try:
            try:
                outcome = await running
            except ProcessLost as lost:
                self._ran(key, claim)
                self._start_activities()  # its place in the pool is free
                await self._settle_lost(key, claim, lost)
                return
            self._ran(key, claim)
            self._start_activities()  # its place in the pool is free
            if outcome.get("recorded"):
                # A transactional activity recorded its own completion (or rolled back).
                outcome_label = "discarded" if outcome.get("rolled_back") else "completed"
                metrics().activity_attempt(claim.activity_name, outcome_label)
                return
            recorded = await self.recorder.add(claim, outcome)
            if recorded is False:
                logger.warning(
                    "Discarded the outcome of %s attempt %s: it no longer runs.",
                    claim.activity_name,
                    claim.attempt,
                    extra=about(claim),
                )
        except asyncio.CancelledError:
            raise
        except BaseException:  # whatever it was, it must not end the worker
            logger.exception(
                "Recording activity %s failed; its lease will expire",
                claim.task_id,
                extra=about(claim),
            )
        finally:
            self.activities.pop(key, None)
            self._wake.set()

    def _ran(self, key: AttemptKey, claim: ActivityClaim) -> None:
        """Report how long the attempt ran, from its start in the pool to its outcome."""
        attempt = self.activities.get(key)
        if attempt is not None and attempt.started_at is not None:
            seconds = (timezone.now() - attempt.started_at).total_seconds()
            metrics().activity_seconds(claim.activity_name, seconds)

    async def _settle_lost(self, key: AttemptKey, claim: ActivityClaim, lost: ProcessLost) -> None:
        attempt = self.activities.get(key)
        doomed = attempt.doomed if attempt else ""
        if doomed.startswith("timeout"):
            error = describe_exception(
                ActivityTimeoutError(
                    f"Activity {claim.activity_name!r} attempt {claim.attempt} exceeded its "
                    f"{doomed.removeprefix('timeout: ')} and was stopped."
                )
            )
            await self.recorder.add(claim, {"error": error}, timed_out=True)
        elif doomed in ("canceled", "superseded"):
            # Its row is canceled already, or another attempt owns it now.
            outcome_label = "canceled" if doomed == "canceled" else "discarded"
            metrics().activity_attempt(claim.activity_name, outcome_label)
        elif lost.collateral:
            metrics().activity_attempt(claim.activity_name, "released")
            # Its process was stopped for a neighbour's sake: not its fault, not charged.
            await _retrying(
                "give back an attempt stopped with its neighbour",
                store.arelease_activity_tasks,
                self.id,
                [claim.task_id],
                uncharged=True,
            )
        else:
            error = describe_exception(
                ActivityProcessDied(
                    f"The process running activity {claim.activity_name!r} attempt "
                    f"{claim.attempt} died ({_describe_exit(lost.exitcode)})."
                )
            )
            await self.recorder.add(claim, {"error": error})

    async def _watchdog_loop(self) -> None:
        """Stop attempts past their timeouts, and canceled ones that ignore the news."""
        last_states = 0.0
        while True:
            await asyncio.sleep(WATCHDOG_SECONDS)
            if self.pending:
                self._start_activities()  # room the pool made without an attempt ending
            now = time.monotonic()
            running = [a for a in self.activities.values() if a.task is not None]
            if running and now - last_states >= STATES_SECONDS:
                last_states = now
                try:
                    states = await store.aattempt_states([a.claim.task_id for a in running])
                except DatabaseError as exc:
                    logger.error("Database error while watching activities: %s", exc)
                    states = {}
                wall = timezone.now()
                for attempt in running:
                    status, beat = states.get(attempt.claim.task_id, (ActivityStatus.RUNNING, None))
                    if status == ActivityStatus.CANCELED and attempt.cancel_noticed is None:
                        attempt.cancel_noticed = now
                    if attempt.heartbeat_timeout and not attempt.doomed:
                        last = max(filter(None, [beat, attempt.started_at]))
                        if (wall - last).total_seconds() > attempt.heartbeat_timeout:
                            attempt.doomed = (
                                f"timeout: heartbeat_timeout of {attempt.heartbeat_timeout:g} s"
                            )
            for attempt in running:
                if attempt.doomed:
                    continue
                if attempt.deadline is not None and now >= attempt.deadline:
                    attempt.doomed = f"timeout: {attempt.deadline_reason}"
                elif attempt.cancel_noticed is not None and (
                    now - attempt.cancel_noticed >= self.options.cancel_grace
                ):
                    attempt.doomed = "canceled"
            for attempt in running:
                key = (attempt.claim.task_id, attempt.claim.attempt)
                if attempt.doomed and not attempt.task.done() and self.pool.stop(key):
                    logger.warning(
                        "Stopped the activity %s attempt %s: %s.",
                        attempt.claim.activity_name,
                        attempt.claim.attempt,
                        attempt.doomed,
                        extra=about(attempt.claim),
                    )

    async def _heartbeat_loop(self) -> None:
        every = durable_setting("LEASE_SECONDS") / 3
        while True:
            await asyncio.sleep(every)
            held = sorted({attempt.claim.task_id for attempt in self.activities.values()})
            try:
                if held:
                    await store.aextend_activity_leases(self.id, held)
                await store.abeat_worker(self.id)
            except DatabaseError as exc:
                logger.error("Database error while renewing leases: %s", exc)


def _is_async(activity_name: str, options: dict) -> bool:
    """Whether an activity scheduled with `options` runs beside others (`async def`)."""
    definition = register.activities.get(activity_name)
    return bool(definition and definition.is_async and not options.get("transactional"))
