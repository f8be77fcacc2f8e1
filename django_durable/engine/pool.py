"""The activity processes: spawned children, each stoppable alone, running either one `def`
attempt or many `async def` attempts at a time.

A `ProcessPoolExecutor` cannot stop one of its children: killing one breaks the whole
executor and fails every attempt running beside it. Here each child has its own pipe, so a
child that dies (`os._exit`, a segfault, the OOM killer) or that the worker stops (a
timeout, a cancellation) costs only the attempts it was running; a fresh child replaces it.

A child runs one `def` attempt alone, so stopping that attempt is killing its process. It
runs up to `DURABLE["ASYNC_ACTIVITIES_PER_PROCESS"]` `async def` attempts as tasks of its
event loop, so stopping one of those is cancelling its task; only if the task does not end
(its code blocks the loop) is the process killed, and the attempts beside it are lost as
`collateral`. Async attempts are packed into children that already run async ones, keeping
idle children for `def` attempts.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import logging
import multiprocessing
import os
import queue
import threading
from collections.abc import Hashable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from typing import Any

from ..conf import durable_setting
from ..exceptions import ActivityNotFound
from ..registry import register
from ..store import ActivityClaim
from .child import CANCEL, READY, RUN, serve

logger = logging.getLogger(__name__)

RESPAWN_DELAY_MAX = 30.0  # seconds between attempts to start a child that keeps failing
STOP_GRACE_SECONDS = 3.0  # a cancelled async attempt's time to end before its process is killed


class ProcessLost(Exception):
    """The process running the attempt died or was stopped; `exitcode` says how if known.

    `collateral` is True when the attempt was not at fault: its process was killed to stop
    another attempt running beside it, so it should be given back uncharged. A process that
    dies on its own cannot say which of its attempts killed it: all of them are lost with
    `collateral` False.
    """

    def __init__(self, exitcode: int | None, *, collateral: bool = False) -> None:
        self.exitcode = exitcode
        self.collateral = collateral
        super().__init__(f"the activity process ended (exit code {exitcode})")


class AttemptStopped(ProcessLost):
    """The attempt was stopped without its process ending: an async attempt's task was
    cancelled, or an attempt still waiting for room was given up."""

    def __init__(self) -> None:
        super().__init__(None)
        self.args = ("the attempt was stopped",)


def runs_async(claim: ActivityClaim) -> bool:
    """Whether the attempt runs as a task beside others (`async def`), or alone in its
    process (`def`, transactional, or unknown to this code, which fails in the child)."""
    try:
        definition = register.get_activity(claim.activity_name)
    except ActivityNotFound:
        return False
    return definition.is_async and not claim.options.get("transactional")


@dataclasses.dataclass(eq=False)
class _Attempt:
    id: int  # names the attempt on the pipe, so outcomes may come back in any order
    key: Hashable
    is_async: bool
    message: bytes  # the RUN message, pickled
    outcome: asyncio.Future
    child: _Child | None = None  # None while it waits for room
    stopping: bool = False


@dataclasses.dataclass(eq=False)
class _Child:
    process: BaseProcess
    conn: Connection
    fd: int
    outbox: queue.SimpleQueue  # pickled messages for its writer thread; None ends it
    ready: bool = False
    alive: bool = True
    attempts: dict[int, _Attempt] = dataclasses.field(default_factory=dict)
    draining: bool = False  # takes no more async attempts: a `def` attempt waits for it
    culprit: _Attempt | None = None  # the attempt whose stop had it killed

    @property
    def sync(self) -> bool:
        """It runs a `def` attempt, which is then its only one."""
        return len(self.attempts) == 1 and not next(iter(self.attempts.values())).is_async


class ActivityPool:
    """`processes` children. `run` waits for room; `stop` stops one attempt, and only it."""

    def __init__(self, processes: int, async_per_process: int | None = None) -> None:
        self.processes = processes
        self.async_per_process = async_per_process or durable_setting(
            "ASYNC_ACTIVITIES_PER_PROCESS"
        )
        self.started = 0  # children started, replacements included
        self._context = multiprocessing.get_context("spawn")
        self._settings = os.environ["DJANGO_SETTINGS_MODULE"]
        self._children: set[_Child] = set()
        self._attempts: dict[Hashable, _Attempt] = {}  # waiting or running, by key
        self._waiting: collections.deque[_Attempt] = collections.deque()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._respawn_delay = 0.0
        self._closed = False

    def start(self) -> None:
        """Start every child now, so the first activities do not pay for Django's setup."""
        self._loop = asyncio.get_running_loop()
        for _ in range(self.processes):
            self._spawn()

    async def run(self, key: Hashable, claim: ActivityClaim) -> dict[str, Any]:
        """Run one attempt, once there is room for it. Raises `ProcessLost` if its process
        ended, `AttemptStopped` if `stop` cancelled it."""
        return await self.submit(key, claim)

    def submit(self, key: Hashable, claim: ActivityClaim) -> asyncio.Future:
        """`run`, as a future, taking its place at once: `room` counts it on return."""
        is_async = runs_async(claim)
        attempt_id = next(self._ids)
        message = (RUN, attempt_id, dataclasses.asdict(claim), is_async)
        attempt = _Attempt(
            attempt_id, key, is_async, ForkingPickler.dumps(message), self._loop.create_future()
        )
        attempt.outcome.add_done_callback(lambda _: self._ended(attempt))
        self._attempts[key] = attempt
        self._waiting.append(attempt)
        self._dispatch()
        return attempt.outcome

    def room(self, is_async: bool) -> int:
        """How many more attempts of this kind would start now, without waiting.

        A `def` attempt needs an idle child; an `async def` one a free place in a child
        running async ones (or an idle child). An idle child counts for both: submit the
        `def` attempts first, then ask again for the async ones.
        """
        ready = [child for child in self._children if child.ready]
        waiting = sum(attempt.is_async == is_async for attempt in self._waiting)
        if is_async:
            free = sum(
                self.async_per_process - len(child.attempts)
                for child in ready
                if not child.sync and not child.draining
            )
        else:
            free = sum(not child.attempts for child in ready)
        return max(0, free - waiting)

    def stop(self, key: Hashable) -> bool:
        """Stop the attempt `key`; its `run` raises `ProcessLost`, the others go on.

        A `def` attempt: its process is killed. An `async def` one: its task is cancelled,
        and its process killed only if it has not ended `STOP_GRACE_SECONDS` later. One
        still waiting for room is given up. Returns True if this call began stopping it,
        False if it is unknown, finished, or being stopped already.
        """
        attempt = self._attempts.get(key)
        if attempt is None or attempt.outcome.done() or attempt.stopping:
            return False
        attempt.stopping = True
        child = attempt.child
        if child is None:
            self._waiting.remove(attempt)
            attempt.outcome.set_exception(AttemptStopped())
        elif not attempt.is_async:
            child.culprit = attempt
            child.process.kill()
        else:
            child.outbox.put(ForkingPickler.dumps((CANCEL, attempt.id)))
            self._loop.call_later(STOP_GRACE_SECONDS, self._stop_overdue, attempt)
        return True

    def pid_of(self, key: Hashable) -> int | None:
        attempt = self._attempts.get(key)
        if attempt is None or attempt.child is None:
            return None
        return attempt.child.process.pid

    def kill(self) -> None:
        """Stop every child at once (the worker is exiting)."""
        self._closed = True
        for child in list(self._children):
            if child.process.is_alive():
                child.process.kill()
            self._forget(child)

    # -- placing attempts ------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start waiting attempts where there is room: idle children go to `def` attempts
        first; async ones fill the fullest child that runs async ones, else an idle one."""
        if not self._waiting:
            return
        ready = [child for child in self._children if child.ready]
        left = []
        for attempt in self._waiting:
            if attempt.outcome.done():  # its `run` was cancelled while it waited
                continue
            if not attempt.is_async:
                idle = [child for child in ready if not child.attempts]
                if idle:
                    self._send(max(idle, key=lambda child: child.draining), attempt)
                    continue
            left.append(attempt)
        sync_waiting = sum(not attempt.is_async for attempt in left)
        if not sync_waiting:
            for child in ready:
                child.draining = False
        waiting: collections.deque[_Attempt] = collections.deque()
        full = False
        for attempt in left:
            if attempt.is_async and not full:
                child = self._async_room(ready)
                if child is not None:
                    self._send(child, attempt)
                    continue
                full = True
            waiting.append(attempt)
        self._waiting = waiting
        # A steady flow of async attempts could keep every child busy for ever: have as many
        # children as there are waiting `def` attempts take no more async ones.
        wanted = sync_waiting - sum(child.draining for child in ready)
        candidates = [c for c in ready if c.attempts and not c.sync and not c.draining]
        for child in sorted(candidates, key=lambda child: len(child.attempts))[: max(0, wanted)]:
            child.draining = True

    def _async_room(self, ready: list[_Child]) -> _Child | None:
        busy = [
            child
            for child in ready
            if child.attempts
            and not child.sync
            and not child.draining
            and len(child.attempts) < self.async_per_process
        ]
        if busy:
            return max(busy, key=lambda child: len(child.attempts))
        idle = [child for child in ready if not child.attempts and not child.draining]
        return idle[0] if idle else None

    def _send(self, child: _Child, attempt: _Attempt) -> None:
        attempt.child = child
        child.attempts[attempt.id] = attempt
        if not attempt.is_async:
            child.draining = False
        child.outbox.put(attempt.message)
        attempt.message = b""  # its arguments may be large, and many attempts run at once

    def _ended(self, attempt: _Attempt) -> None:
        """Its outcome is known (or its `run` was cancelled): forget it."""
        if self._attempts.get(attempt.key) is attempt:
            del self._attempts[attempt.key]
        if attempt.child is None and attempt in self._waiting:
            self._waiting.remove(attempt)  # its `run` was cancelled while it waited

    def _stop_overdue(self, attempt: _Attempt) -> None:
        child = attempt.child
        if attempt.outcome.done() or not child.alive or attempt.id not in child.attempts:
            return
        logger.warning(
            "An async activity did not end within %.0f s of being cancelled (does its code "
            "block the event loop?): killing its process and %d attempt(s) beside it.",
            STOP_GRACE_SECONDS,
            len(child.attempts) - 1,
        )
        child.culprit = attempt
        child.process.kill()

    # -- children --------------------------------------------------------------------------

    def _spawn(self) -> None:
        if self._closed:
            return
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=serve,
            args=(theirs, self._settings, os.getpid()),
            name="durable-activity",
            daemon=True,
        )
        process.start()  # from the loop's (main) thread: the child dies with this thread
        theirs.close()  # else the child's death would never read as end-of-file here
        child = _Child(process, ours, ours.fileno(), queue.SimpleQueue())
        self._children.add(child)
        self.started += 1
        # Writing on a thread: a child whose loop is blocked reads nothing, and a large
        # message to it must not block the worker's loop.
        threading.Thread(
            target=self._write, args=(child,), name="durable-pool-writer", daemon=True
        ).start()
        self._loop.add_reader(child.fd, self._on_readable, child)
        # uvloop makes a watched descriptor non-blocking; reads of a large message and the
        # writer thread's writes need it blocking (a message is read whole once it begins).
        os.set_blocking(child.fd, True)

    def _write(self, child: _Child) -> None:
        """The writer thread of one child; it alone closes the pipe, so that its descriptor
        is never reused by another child's pipe while a write is under way."""
        broken = False
        while (message := child.outbox.get()) is not None:
            if broken:
                continue
            try:
                child.conn.send_bytes(message)
            except OSError:
                broken = True  # the child is gone; the loop reads end-of-file
        child.conn.close()

    def _on_readable(self, child: _Child) -> None:
        try:
            message = child.conn.recv()
        except (EOFError, OSError):
            self._lost(child)
            return
        if message == READY:
            child.ready = True
            self._respawn_delay = 0.0
        else:
            _, attempt_id, outcome = message
            attempt = child.attempts.pop(attempt_id, None)
            if attempt is not None and not attempt.outcome.done():
                if attempt.stopping:
                    attempt.outcome.set_exception(AttemptStopped())
                else:
                    attempt.outcome.set_result(outcome)
        self._dispatch()

    def _lost(self, child: _Child) -> None:
        """A child ended: fail only its own attempts, and start a replacement."""
        if not child.alive:
            return
        was_ready = child.ready
        self._forget(child)
        child.process.join(timeout=1.0)
        exitcode = child.process.exitcode
        culprit = child.culprit
        for attempt in child.attempts.values():
            if not attempt.outcome.done():
                collateral = culprit is not None and not attempt.stopping
                attempt.outcome.set_exception(ProcessLost(exitcode, collateral=collateral))
        child.attempts.clear()
        if self._closed:
            return
        self._dispatch()  # a `def` attempt may have waited for this child to drain
        if was_ready:
            self._spawn()
            return
        # It died while starting (an import error in the project?): do not spin.
        self._respawn_delay = min(RESPAWN_DELAY_MAX, max(1.0, self._respawn_delay * 2))
        logger.error(
            "An activity process exited with code %s while starting; trying again in %.0f s.",
            exitcode,
            self._respawn_delay,
        )
        self._loop.call_later(self._respawn_delay, self._spawn)

    def _forget(self, child: _Child) -> None:
        if not child.alive:
            return
        child.alive = False
        self._children.discard(child)
        try:
            self._loop.remove_reader(child.fd)
        except (RuntimeError, ValueError, OSError):
            pass
        child.outbox.put(None)
