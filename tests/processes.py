"""Real worker processes for the acceptance and chaos rings, started as a user would."""

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class WorkerProcess:
    def __init__(self, args, env, log_path):
        self.log_path = log_path
        self.log = open(log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", "durable_worker", *args],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, children included
        )

    @property
    def pid(self):
        return self.process.pid

    def output(self) -> str:
        self.log.flush()
        return Path(self.log_path).read_text(errors="replace")

    def signal(self, signum) -> None:
        self.process.send_signal(signum)

    def kill_group(self) -> None:
        """kill -9 the worker's whole process group: the worker and its activity processes."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill_group()
        else:
            try:  # activity processes may outlive a worker that exited
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.log.close()


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie is as good as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"
