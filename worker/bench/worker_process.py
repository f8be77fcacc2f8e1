"""The workers under test: `manage.py durable_worker` subprocesses that the benchmark starts,
pauses (SIGSTOP), resumes, measures (/proc) and stops."""

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

from .procstats import GroupUsage, group_usage

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
        self.terminated = False
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
            raise CommandError(f"The worker {self.pid} exited with code {code}.")

    def pause(self) -> None:
        """SIGSTOP the worker and its activity processes: nothing runs until `resume`."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def usage(self) -> GroupUsage | None:
        """CPU seconds so far and memory now, of the worker and its activity processes."""
        return group_usage(self.process.pid)

    def terminate(self) -> None:
        """Ask the worker to stop (SIGTERM), waking it first if it is paused."""
        self.resume()
        self.process.send_signal(signal.SIGTERM)
        self.terminated = True

    def stop(self, timeout: float) -> int:
        """SIGTERM, then wait; returns the exit code. Kills the group if it does not stop."""
        if not self.terminated:
            self.terminate()
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


class WorkerGroup:
    """`count` workers sharing the database, started, paused and stopped together."""

    def __init__(self, count: int, *, procs: int, batch: int, tick: float) -> None:
        self.workers = [WorkerProcess(procs=procs, batch=batch, tick=tick) for _ in range(count)]

    def start(self, ready_timeout: float) -> None:
        for worker in self.workers:
            worker.start()
        for worker in self.workers:
            worker.wait_registered(ready_timeout)

    def check_alive(self) -> None:
        for worker in self.workers:
            worker.check_alive()

    def pause(self) -> None:
        for worker in self.workers:
            worker.pause()

    def resume(self) -> None:
        for worker in self.workers:
            worker.resume()

    def usage(self) -> GroupUsage:
        """Summed over the workers (zeros where /proc cannot tell)."""
        looks = [worker.usage() for worker in self.workers]
        looks = [look for look in looks if look is not None]
        return GroupUsage(
            cpu_seconds=sum(look.cpu_seconds for look in looks),
            worker_rss_mb=sum(look.worker_rss_mb for look in looks),
            children_rss_mb=sum(look.children_rss_mb for look in looks),
        )

    def stop(self, timeout: float) -> list[int]:
        """Stop every worker (SIGTERM); their exit codes. A worker that exits non-zero fails."""
        for worker in self.workers:
            worker.terminate()
        codes = [worker.stop(timeout) for worker in self.workers]
        bad = [(w.pid, code) for w, code in zip(self.workers, codes, strict=True) if code != 0]
        if bad:
            raise CommandError(f"Worker(s) exited with a failure: {bad} (pid, exit code).")
        return codes

    def kill(self) -> None:
        for worker in self.workers:
            worker.kill()

    def log_tails(self) -> str:
        return "\n".join(worker.log_tail() for worker in self.workers if worker.log_path)

    @property
    def log_paths(self) -> list[str]:
        return [worker.log_path for worker in self.workers]
