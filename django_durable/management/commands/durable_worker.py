"""`manage.py durable_worker`: run workflow tasks and activities until told to stop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from django.core.management.base import BaseCommand, CommandError

from django_durable.engine.worker import Worker, WorkerOptions
from django_durable.observability.logs import CONSOLE_FORMAT, ExecutionFields


def _loop_factory():
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def _log_to_stderr(verbosity: int) -> None:
    """Unless `LOGGING` sends django_durable's records somewhere (to a handler of its own or
    of the root logger), log to stderr, each record with the execution fields it carries:
    warnings and errors, and with `-v 2` what the worker does too."""
    if logging.getLogger("django_durable").hasHandlers():
        return
    handler = logging.StreamHandler()
    handler.addFilter(ExecutionFields())
    level = logging.INFO if verbosity > 1 else logging.WARNING
    logging.basicConfig(level=level, format=CONSOLE_FORMAT, handlers=[handler])


class Command(BaseCommand):
    help = "Run a durable worker: workflow tasks on one asyncio loop, activities in processes."

    def add_arguments(self, parser):
        parser.add_argument(
            "--async",
            action="store_true",
            dest="use_async",
            help="Accepted for clarity: the worker is always one asyncio event loop.",
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=100,
            help="Most rows claimed per query, and workflow tasks recorded per transaction.",
        )
        parser.add_argument(
            "--tick",
            type=float,
            default=0.2,
            help="Poll interval in seconds on databases without LISTEN/NOTIFY (SQLite).",
        )
        parser.add_argument(
            "--procs",
            type=int,
            default=os.cpu_count() or 2,
            help="Activity processes (and so activities run at once).",
        )
        parser.add_argument(
            "--queue",
            action="append",
            dest="queues",
            default=[],
            help="Only run activities of this queue (repeatable; default: all queues).",
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=30.0,
            help="Seconds in-flight activities get to finish after SIGTERM/SIGINT.",
        )

    def handle(self, *args, **options):
        for name in ("batch", "procs"):
            if options[name] < 1:
                raise CommandError(f"--{name} must be at least 1.")
        if options["tick"] <= 0 or options["grace"] < 0:
            raise CommandError("--tick must be positive and --grace not negative.")
        _log_to_stderr(options["verbosity"])
        worker = Worker(
            WorkerOptions(
                batch=options["batch"],
                tick=options["tick"],
                procs=options["procs"],
                queues=options["queues"],
                grace=options["grace"],
            )
        )
        wakeups = "LISTEN/NOTIFY" if worker.uses_notify else f"polling every {options['tick']} s"
        self.stdout.write(
            f"Durable worker {worker.id}: {options['procs']} activity process(es), "
            f"queues {', '.join(options['queues']) or 'all'}, woken by {wakeups}."
        )
        self.stdout.flush()
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.get_loop().run_until_complete(self._install_signals(worker))
            runner.run(worker.run())
        self.stdout.write(f"Durable worker {worker.id} stopped.")

    async def _install_signals(self, worker: Worker) -> None:
        loop = asyncio.get_running_loop()
        signals_seen = []

        def on_signal(signum):
            signals_seen.append(signum)
            if len(signals_seen) == 1:
                sys.stderr.write("Stopping: finishing in-flight work (signal again to exit now).\n")
                worker.request_stop()
            else:
                sys.stderr.write("Exiting now; unfinished work is retried when leases expire.\n")
                if worker.pool is not None:
                    worker.pool.kill()
                os._exit(1)

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
