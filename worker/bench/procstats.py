"""CPU seconds and resident memory of a worker's process group, read from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_KB = (os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096) // 1024


@dataclass(frozen=True)
class GroupUsage:
    """One look at a worker and the processes of its group (its activity processes)."""

    cpu_seconds: float  # all of them, live ones plus the children the worker has reaped
    worker_rss_mb: float  # the worker process itself
    children_rss_mb: float  # the rest of its process group


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name, in parentheses, may hold spaces: split after its closing one.
    return text[text.rindex(")") + 2 :].split()


def _rss_mb(fields: list[str]) -> float:
    return int(fields[21]) * PAGE_KB / 1024  # field 24 of stat: resident pages


def group_usage(leader: int) -> GroupUsage | None:
    """Usage of process group `leader` (a worker started in its own session); None without
    /proc or once the leader is gone."""
    if not PROC.is_dir():
        return None
    own = _stat_fields(leader)
    if own is None:
        return None
    # After the command name: state, ppid, pgrp, ..., utime (14), stime, cutime, cstime.
    cpu_ticks = sum(int(value) for value in own[11:15])
    children_rss = 0.0
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == leader:
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or int(fields[2]) != leader:
            continue
        cpu_ticks += int(fields[11]) + int(fields[12])
        children_rss += _rss_mb(fields)
    return GroupUsage(cpu_ticks / TICKS, _rss_mb(own), children_rss)
