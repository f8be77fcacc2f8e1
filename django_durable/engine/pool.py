"""The activity processes: spawned children, one attempt each at a time, each stoppable alone.

A `ProcessPoolExecutor` cannot stop one of its children: killing one breaks the whole
executor and fails every attempt running beside it. Here each child has its own pipe, so a
child that dies (`os._exit`, a segfault, the OOM killer) or that the worker stops (a
timeout, a cancellation) costs only the attempt it was running; a fresh child replaces it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import os
from collections.abc import Hashable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from ..store import ActivityClaim
from .child import READY, serve

logger = logging.getLogger("django_durable.worker")

RESPAWN_DELAY_MAX = 30.0  # seconds between attempts to start a child that keeps failing


class ProcessLost(Exception):
    """The process running the attempt died or was stopped; `exitcode` says how if known."""

    def __init__(self, exitcode: int | None) -> None:
        self.exitcode = exitcode
        super().__init__(f"the activity process ended (exit code {exitcode})")


@dataclasses.dataclass(eq=False)
class _Child:
    process: BaseProcess
    conn: Connection
    ready: bool = False
    alive: bool = True
    attempt: asyncio.Future | None = None  # the outcome of the attempt it runs now


class ActivityPool:
    """`processes` children. `run` waits for an idle one; `stop` kills the one running a key."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.started = 0  # children started, replacements included
        self._context = multiprocessing.get_context("spawn")
        self._settings = os.environ["DJANGO_SETTINGS_MODULE"]
        self._children: set[_Child] = set()
        self._running: dict[Hashable, _Child] = {}
        self._idle: asyncio.Queue[_Child] | None = None
        self._respawn_delay = 0.0
        self._closed = False

    def start(self) -> None:
        """Start every child now, so the first activities do not pay for Django's setup."""
        self._idle = asyncio.Queue()
        for _ in range(self.processes):
            self._spawn()

    async def run(self, key: Hashable, claim: ActivityClaim) -> dict[str, Any]:
        """Run one attempt in an idle child. Raises `ProcessLost` if its process ended."""
        while True:
            child = await self._idle.get()
            if child.alive:
                break
        child.attempt = asyncio.get_running_loop().create_future()
        self._running[key] = child
        try:
            try:
                child.conn.send(dataclasses.asdict(claim))
            except OSError:
                self._lost(child)
            return await child.attempt
        finally:
            if self._running.get(key) is child:
                del self._running[key]

    def stop(self, key: Hashable) -> bool:
        """Kill the child running `key` (its `run` raises `ProcessLost`); the others go on."""
        child = self._running.get(key)
        if child is None or not child.alive:
            return False
        child.process.kill()
        return True

    def pid_of(self, key: Hashable) -> int | None:
        child = self._running.get(key)
        return child.process.pid if child is not None else None

    def kill(self) -> None:
        """Stop every child at once (the worker is exiting)."""
        self._closed = True
        for child in list(self._children):
            if child.process.is_alive():
                child.process.kill()
            self._forget(child)

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
        child = _Child(process, ours)
        self._children.add(child)
        self.started += 1
        asyncio.get_running_loop().add_reader(ours.fileno(), self._on_readable, child)

    def _on_readable(self, child: _Child) -> None:
        try:
            message = child.conn.recv()
        except (EOFError, OSError):
            self._lost(child)
            return
        if message == READY:
            child.ready = True
            self._respawn_delay = 0.0
        elif child.attempt is not None and not child.attempt.done():
            child.attempt.set_result(message)
        child.attempt = None
        self._idle.put_nowait(child)

    def _lost(self, child: _Child) -> None:
        """A child ended: fail only its own attempt, and start a replacement."""
        if not child.alive:
            return
        was_ready = child.ready
        self._forget(child)
        child.process.join(timeout=1.0)
        exitcode = child.process.exitcode
        if child.attempt is not None and not child.attempt.done():
            child.attempt.set_exception(ProcessLost(exitcode))
        if self._closed:
            return
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
        asyncio.get_running_loop().call_later(self._respawn_delay, self._spawn)

    def _forget(self, child: _Child) -> None:
        if not child.alive:
            return
        child.alive = False
        self._children.discard(child)
        try:
            asyncio.get_running_loop().remove_reader(child.conn.fileno())
        except (RuntimeError, ValueError, OSError):
            pass
        child.conn.close()
