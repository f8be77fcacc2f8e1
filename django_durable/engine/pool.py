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


class ActivityPool:
    """`--procs` child processes; a broken pool (a child died) is replaced at once."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_child,
            initargs=(os.environ["DJANGO_SETTINGS_MODULE"],),
        )

    async def run(self, claim: ActivityClaim) -> dict[str, Any] | None:
        """Run one attempt in a child; None if the pool broke under it (a child died)."""
        loop = asyncio.get_running_loop()
        executor = self._executor
        try:
            return await loop.run_in_executor(executor, run_in_child, dataclasses.asdict(claim))
        except BrokenProcessPool as exc:
            if executor is self._executor:
                logger.error("An activity process died; starting a new pool.")
                executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()
            logger.warning(
                "Activity %s attempt %s was lost: %s", claim.activity_name, claim.attempt, exc
            )
            return None

    def warm_up(self) -> None:
        """Start every child now, so the first activities do not pay for Django's setup."""
        for _ in range(self.processes):
            self._executor.submit(os.getpid)

    def pids(self) -> list[int]:
        return [p.pid for p in getattr(self._executor, "_processes", {}).values()]

    def kill(self) -> None:
        """Stop every child at once (a second signal, or the grace period ran out)."""
        for process in list(getattr(self._executor, "_processes", {}).values()):
            if process.is_alive():
                process.kill()
        self._executor.shutdown(wait=False, cancel_futures=True)
