"""The main function of an activity process: set Django up, then run attempts sent over a pipe.

Importable before Django is set up: the spawned child unpickles a reference to `serve`
before anything else. A child runs one attempt at a time, so the worker can stop one
attempt by stopping its process without touching any other.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection

READY = "ready"  # the first message a child sends: Django is set up, attempts may come
PARENT_CHECK_SECONDS = 1.0
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

    conn.send(READY)
    while True:
        try:
            claim_fields = conn.recv()
        except (EOFError, OSError):
            return  # the worker closed the pipe or is gone
        close_old_connections()
        try:
            outcome = execute_activity(ActivityClaim(**claim_fields))
        finally:
            close_old_connections()
        conn.send(outcome)


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
