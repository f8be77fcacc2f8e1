"""Waiting on the workers, with stall detection: a run that stops moving fails loudly."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.core.management.base import CommandError

from django_durable.management.progress import Progress


def wait_for(
    probe: Callable[[], int],
    target: int,
    label: str,
    *,
    check: Callable[[], None],
    progress: Progress | None,
    stall_seconds: float,
    poll: float = 0.05,
) -> None:
    """Poll `probe()` (one query) until it reaches `target`.

    Fails with a CommandError when the value has not changed for `stall_seconds`, or when
    `check()` (the workers are alive) raises."""
    if progress is not None:
        progress.task(label, target)
    last, last_change = -1, time.monotonic()
    try:
        while True:
            value = probe()
            if progress is not None:
                progress.update(value)
            if value >= target:
                return
            if value != last:
                last, last_change = value, time.monotonic()
            elif time.monotonic() - last_change > stall_seconds:
                raise CommandError(
                    f"{label}: stuck at {value} of {target} for {stall_seconds:.0f} s."
                )
            check()
            time.sleep(poll)
    finally:
        if progress is not None:
            progress.end()
