"""The main function of an activity process: set Django up, then run attempts sent over a pipe.

Importable before Django is set up: the spawned child unpickles a reference to `serve`
before anything else. A child runs either one `def` attempt, blocking, in its main thread
with no event loop running (so Django allows sync database access), or several `async def`
attempts at once, as tasks of one event loop kept for the life of the process. The worker
never mixes the two in one child, so it can still stop a `def` attempt by stopping its
process, and stops an `async def` one by cancelling its task.

The pipe protocol (each attempt has an id the worker chose, so outcomes may come back in
any order):
    worker -> child   (RUN, id, claim fields, is_async)   start an attempt
                      (CANCEL, id)                        cancel an async attempt's task
    child -> worker   READY                               once, when Django is set up
                      (DONE, id, outcome)                 an attempt ended
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

READY = "ready"  # the first message a child sends: Django is set up, attempts may come
RUN = "run"
CANCEL = "cancel"
DONE = "done"
PARENT_CHECK_SECONDS = 1.0
CLEANUP_SECONDS = 10.0  # how often a busy process closes obsolete database connections
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def serve(conn: Connection, settings_module: str, parent_pid: int) -> None:
    """Run attempts until the pipe closes; die with the worker, whatever kills it."""
    _die_with_parent(parent_pid)
    # A terminal's Ctrl-C reaches the whole process group, and service managers may send
    # SIGTERM to every process of the unit: the worker decides when its activities stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    django.setup()
    from django.db import close_old_connections

    from ..store import ActivityClaim
    from .activities import execute_activity

    loop = _new_event_loop()
    concurrent = _AsyncAttempts(conn, loop)
    conn.send(READY)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the worker closed the pipe or is gone
        if message[0] != RUN:
            continue  # a cancel that came after its attempt ended
        _, attempt_id, claim_fields, is_async = message
        if is_async:
            # Returns once no async attempt is left; more may arrive meanwhile.
            loop.run_until_complete(concurrent.run(attempt_id, claim_fields))
            continue
        close_old_connections()
        try:
            outcome = execute_activity(ActivityClaim(**claim_fields))
        finally:
            close_old_connections()
        conn.send((DONE, attempt_id, outcome))


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _AsyncAttempts:
    """The async attempts of this process, each a task of the loop; the loop reads the pipe
    for more (and for cancels) while they run."""

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop) -> None:
        self.conn = conn
        self.loop = loop
        self.tasks: dict[int, asyncio.Task] = {}
        self.idle: asyncio.Future | None = None
        self.cleanups: set[asyncio.Task] = set()
        self.cleaned = time.monotonic()

    async def run(self, attempt_id: int, claim_fields: dict[str, Any]) -> None:
        """Run this attempt and whatever else comes, until none is left."""
        self.idle = self.loop.create_future()
        self._start(attempt_id, claim_fields)
        self.loop.add_reader(self.conn.fileno(), self._on_readable)
        # uvloop makes a watched descriptor non-blocking: `recv` must read whole messages,
        # here and in `serve` once the loop is done.
        os.set_blocking(self.conn.fileno(), True)
        await self.idle
        if self.cleanups:
            await asyncio.wait(self.cleanups)
        await self._close_old_connections()

    async def _close_old_connections(self) -> None:
        """What `serve` does around each `def` attempt, for the connections async attempts
        use: those of the thread that runs Django's async ORM, and the heartbeat helper's."""
        from asgiref.sync import sync_to_async
        from django.db import close_old_connections

        from .activities import release_helper_connections

        self.cleaned = time.monotonic()
        await sync_to_async(close_old_connections)()
        await asyncio.to_thread(release_helper_connections)

    def _start(self, attempt_id: int, claim_fields: dict[str, Any]) -> None:
        from ..store import ActivityClaim
        from .activities import execute_activity_async

        task = self.loop.create_task(execute_activity_async(ActivityClaim(**claim_fields)))
        self.tasks[attempt_id] = task
        task.add_done_callback(lambda task: self._ended(attempt_id, task))

    def _on_readable(self) -> None:
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            os._exit(0)  # the worker is gone: nobody is left to take the outcomes
        if message[0] == RUN:
            _, attempt_id, claim_fields, _ = message
            self._start(attempt_id, claim_fields)
        elif message[0] == CANCEL and message[1] in self.tasks:
            self.tasks[message[1]].cancel()

    def _ended(self, attempt_id: int, task: asyncio.Task) -> None:
        del self.tasks[attempt_id]
        try:
            outcome = task.result()
        except BaseException as exc:  # cancelled before it began: the activity never ran
            from ..payloads import describe_exception

            outcome = {"error": describe_exception(exc)}
        self.conn.send((DONE, attempt_id, outcome))
        if not self.tasks:
            # In the same step as the last outcome: whatever the worker sends once it has
            # read it (a `def` attempt, say) is read by `serve`, outside the loop.
            self.loop.remove_reader(self.conn.fileno())
            self.idle.set_result(None)
        elif time.monotonic() - self.cleaned >= CLEANUP_SECONDS:
            # A busy process may never run out of attempts: close obsolete or broken
            # connections (a database restart) now and then all the same.
            cleanup = self.loop.create_task(self._close_old_connections())
            self.cleanups.add(cleanup)
            cleanup.add_done_callback(self.cleanups.discard)


def _die_with_parent(parent_pid: int) -> None:
    """Make sure this process does not outlive the worker (kill -9 of the worker included).

    On Linux the kernel sends SIGKILL when the parent dies; elsewhere, and for the moment
    before that is set, a watcher thread notices the parent is gone.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(1)  # the worker died before the kernel could be told

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="durable-parent-watch", daemon=True).start()
