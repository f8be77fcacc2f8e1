"""The process pool activities run in: spawned children that set Django up themselves."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..store import ActivityClaim
from .child import init_child, run_in_child

logger = logging.getLogger("django_durable.worker")


class ProcessLost(Exception):
    """The attempt's process died: `intentional` if the worker stopped the pool itself."""

    def __init__(self, intentional: bool) -> None:
        self.intentional = intentional
        super().__init__("stopped by the worker" if intentional else "an activity process died")


class ActivityPool:
    """`--procs` child processes. Stopping one child breaks the whole executor, so a
    timed-out activity costs the other running attempts a re-run (as the same attempt)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._executor = self._new_executor()
        self._stopped: set[ProcessPoolExecutor] = set()  # broken by the worker on purpose

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_child,
            initargs=(os.environ["DJANGO_SETTINGS_MODULE"],),
        )

    async def run(self, claim: ActivityClaim) -> dict[str, Any]:
        """Run one attempt in a child. Raises `ProcessLost` if its process died."""
        loop = asyncio.get_running_loop()
        executor = self._executor
        try:
            return await loop.run_in_executor(executor, run_in_child, dataclasses.asdict(claim))
        except BrokenProcessPool:
            intentional = executor in self._stopped
            if executor is self._executor:
                logger.error("An activity process died; starting new ones.")
                self._replace()
            raise ProcessLost(intentional) from None

    def _replace(self) -> None:
        old = self._executor
        self._executor = self._new_executor()
        old.shutdown(wait=False, cancel_futures=True)

    def restart(self) -> None:
        """Stop every child now (a timeout or a cancellation) and start fresh ones."""
        old = self._executor
        self._stopped.add(old)
        self._executor = self._new_executor()
        self._kill(old)

    def warm_up(self) -> None:
        """Start every child now, so the first activities do not pay for Django's setup."""
        for _ in range(self.processes):
            self._executor.submit(os.getpid)

    @staticmethod
    def _kill(executor: ProcessPoolExecutor) -> None:
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            if process.is_alive():
                process.kill()
        executor.shutdown(wait=False, cancel_futures=True)

    def kill(self) -> None:
        """Stop every child at once (a second signal, or the worker is exiting)."""
        self._stopped.add(self._executor)
        self._kill(self._executor)
