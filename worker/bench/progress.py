"""Progress on stderr: a bar redrawn in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

PLAIN_EVERY = 5.0  # seconds between plain progress lines
BAR = 30


class Progress:
    """`note` a line; `task(label, total)` then `update(done)` while it runs, `end()` after."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.label = ""
        self.total = 0
        self.began = 0.0
        self.last_line = 0.0
        self.last_done = -1

    def note(self, text: str) -> None:
        self._clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def task(self, label: str, total: int) -> None:
        self.label, self.total, self.last_done = label, total, -1
        self.began = self.last_line = time.monotonic()
        if not self.tty:
            self.note(f"{label}: 0/{total}")

    def update(self, done: int) -> None:
        now = time.monotonic()
        elapsed = now - self.began
        if self.tty:
            filled = BAR * done // max(self.total, 1)
            bar = "#" * filled + "-" * (BAR - filled)
            self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total} {elapsed:6.1f} s")
            self.stream.flush()
        elif now - self.last_line >= PLAIN_EVERY and done != self.last_done:
            self.note(f"{self.label}: {done}/{self.total} ({elapsed:.1f} s)")
            self.last_line = now
        self.last_done = done

    def end(self) -> None:
        elapsed = time.monotonic() - self.began
        if self.tty:
            self._clear()
        self.note(f"{self.label}: {self.last_done}/{self.total} in {elapsed:.1f} s")

    def _clear(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
