"""One `manage.py durable_worker` subprocess: start it, know when it is up, stop or kill it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.core.management.base import CommandError

from django_durable.models import Worker

MANAGE_PY = Path(__file__).resolve().parent.parent / "manage.py"


class WorkerProcess:
    """The worker under test, in its own process group, its output in a temporary log."""

    def __init__(self, *, procs: int, batch: int, tick: float) -> None:
        self.argv = [
            sys.executable,
            str(MANAGE_PY),
            "durable_worker",
            "--procs",
            str(procs),
            "--batch",
            str(batch),
            "--tick",
            str(tick),
        ]
        self.process: subprocess.Popen | None = None
        self.log_path = ""

    def start(self) -> None:
        log = tempfile.NamedTemporaryFile(
            mode="wb", prefix="durable_bench_worker_", suffix=".log", delete=False
        )
        self.log_path = log.name
        with log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_registered(self, timeout: float) -> None:
        """Return once the worker's row is in the database with a heartbeat."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            row = Worker.objects.filter(pid=self.pid, stopped_at__isnull=True).order_by(
                "-started_at"
            )
            if row.filter(heartbeat_at__isnull=False).exists():
                return
            time.sleep(0.05)
        raise CommandError(f"The worker did not register within {timeout:.0f} s.")

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise CommandError(f"The worker exited with code {code}.")

    def stop(self, timeout: float) -> int:
        """SIGTERM, then wait; returns the exit code. Kills the group if it does not stop."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise CommandError(
                f"The worker did not stop within {timeout:.0f} s of SIGTERM; killed it."
            ) from None
        self._kill_group()  # activity processes left behind, if any
        return code

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (it and its activity processes)."""
        if self.process is None:
            return
        self._kill_group()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def _kill_group(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def log_lines(self) -> list[str]:
        if not self.log_path:
            return []
        return Path(self.log_path).read_text(errors="replace").splitlines()

    def log_tail(self, lines: int = 30) -> str:
        tail = self.log_lines()[-lines:]
        return f"Last lines of the worker log {self.log_path}:\n" + "\n".join(tail)
