"""Progress of a long command on a stream: a bar redrawn in place on a terminal, plain lines
otherwise (a log file, cron's mail, a CI job), so neither fills with carriage returns.

Shared by `durable_prune` and the benchmark (`durable_bench`); commands write it to stderr
and keep stdout for their result.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from django.core.management.base import OutputWrapper

PLAIN_EVERY = 5.0  # seconds between plain progress lines
BAR = 30  # characters of the bar


def raw_stream(stream: TextIO | OutputWrapper) -> TextIO:
    """The stream under a command's `self.stdout` / `self.stderr`: Django's wrapper ends every
    write with a newline (a bar needs none) and colours stderr red on a terminal. It has no
    public accessor for the stream it wraps."""
    return stream._out if isinstance(stream, OutputWrapper) else stream


class Progress:
    """`note` a line; `task(label, total)` then `update(done)` or `advance(step)` while it
    runs, `end()` after. `total=None` when the amount is not known in advance: the count is
    shown without a bar.

    On a terminal (`stream.isatty()`) one line is redrawn at every update; otherwise a line
    is written when the task starts, at most every `every` seconds while it runs (default
    `PLAIN_EVERY`), and when it ends.
    """

    def __init__(self, stream: TextIO | OutputWrapper | None = None, *, every: float | None = None):
        self.stream = raw_stream(stream if stream is not None else sys.stderr)
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = PLAIN_EVERY if every is None else every
        self.label = ""
        self.total: int | None = None
        self.done = 0
        self.began = 0.0
        self.last_line = 0.0
        self.last_done = -1

    def note(self, text: str) -> None:
        self._clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def task(self, label: str, total: int | None) -> None:
        self.label, self.total, self.done, self.last_done = label, total, 0, -1
        self.began = self.last_line = time.monotonic()
        if not self.tty:
            self.note(f"{label}: {self._count(0)}")

    def advance(self, step: int) -> None:
        """Count `step` more units done (a batch deleted, say)."""
        self.update(self.done + step)

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        elapsed = now - self.began
        if self.tty:
            self.stream.write(
                f"\r{self.label} {self._bar(done)}{self._count(done)} {elapsed:6.1f} s"
            )
            self.stream.flush()
        elif now - self.last_line >= self.every and done != self.last_done:
            self.note(f"{self.label}: {self._count(done)} ({elapsed:.1f} s)")
            self.last_line = now
        self.last_done = done

    def end(self) -> None:
        elapsed = time.monotonic() - self.began
        self.note(f"{self.label}: {self._count(self.done)} in {elapsed:.1f} s")

    def _bar(self, done: int) -> str:
        if self.total is None:
            return ""
        filled = min(BAR, BAR * done // max(self.total, 1))
        return "[" + "#" * filled + "-" * (BAR - filled) + "] "

    def _count(self, done: int) -> str:
        return str(done) if self.total is None else f"{done}/{self.total}"

    def _clear(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
