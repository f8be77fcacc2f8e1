"""The command's options and the sizes each shape runs at (the issue's, times --scale)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from django.core.management.base import CommandError

SHAPES = ("starts", "one", "ten", "single", "signal", "fanout", "steps", "sleepers", "idle")
SHAPES += ("sqlite",)
FANOUT_KINDS = ("async", "sync")

# size option -> (full size from the issue, smallest size it may be scaled down to)
FULL_SIZES = {
    "workflows": (2000, 1),  # `one`
    "ten": (200, 1),
    "single_samples": (20, 1),
    "signal_samples": (100, 1),
    "starts": (1000, 1),  # one by one
    "bulk_starts": (10000, 1),
    "fanout": (1000, 1),
    "steps": (1000, 2),
    "sleepers": (10000, 1),
}


@dataclass
class BenchConfig:
    shapes: list[str]
    mode: str
    workers: int
    procs: int
    batch: int
    tick: float
    sizes: dict[str, int]
    fanout_kinds: list[str]
    fanout_seconds: float
    sleep_seconds: float | None
    idle_seconds: float
    settle: float
    stall: float
    pgbench: bool
    pgbench_seconds: int
    json: bool
    argv: dict = field(default_factory=dict)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--shape", action="append", choices=("all", *SHAPES), help="Shape(s) to run (all).")
    add("--mode", choices=("drain", "live"), default="drain", help="For one, ten: drain|live.")
    add("--workers", type=int, default=1, help="Worker processes (K).")
    add("--procs", type=int, default=4, help="Worker --procs (activity processes each).")
    add("--batch", type=int, default=100, help="Worker --batch.")
    add("--tick", type=float, default=0.2, help="Worker --tick (seconds).")
    add("--scale", type=float, default=1.0, help="Multiply every size below by this.")
    add("--workflows", type=int, help="one: workflows (2000).")
    add("--ten", type=int, help="ten: workflows (200).")
    add("--single-samples", type=int, help="single: workflows run one at a time (20).")
    add("--signal-samples", "--latency-samples", type=int, help="signal: round trips (100).")
    add("--starts", type=int, help="starts: one-by-one starts (1000).")
    add("--bulk-starts", type=int, help="starts: workflows in the bulk start (10000).")
    add("--fanout", type=int, help="fanout: activities gathered by one workflow (1000).")
    add("--fanout-kind", choices=("both", *FANOUT_KINDS), default="both", help="fanout kind.")
    add("--fanout-seconds", type=float, default=1.0, help="fanout async: I/O seconds each.")
    add("--steps", type=int, help="steps: sequential activities of one workflow (1000).")
    add("--sleepers", type=int, help="sleepers: workflows asleep at once (10000).")
    add("--sleep-seconds", type=float, help="sleepers: wake this long after the bulk start.")
    add("--idle-seconds", type=float, default=10.0, help="idle: seconds watched (10).")
    add("--settle", type=float, default=11.0, help="PostgreSQL: quiet seconds before a count.")
    add("--stall", type=float, default=60.0, help="Fail when nothing moves for this long.")
    add("--pgbench", action=argparse.BooleanOptionalAction, help="pgbench yardstick (all: on).")
    add("--pgbench-seconds", type=int, default=5, help="pgbench: seconds per client count.")
    add("--json", action="store_true", help="Print only the JSON document.")


def _positive(options: dict, name: str, value: float, *, zero: bool = False) -> None:
    if value < 0 or (value == 0 and not zero) or value != value:
        bound = "0 or more" if zero else "positive"
        raise CommandError(f"--{name.replace('_', '-')} must be {bound}, not {value}.")


def resolve(options: dict) -> BenchConfig:
    """The run's configuration; a bad value is a one-line CommandError."""
    for name in ("workers", "procs", "batch", "scale", "tick", "fanout_seconds", "stall"):
        _positive(options, name, options[name])
    for name in ("idle_seconds", "pgbench_seconds"):
        _positive(options, name, options[name])
    _positive(options, "settle", options["settle"], zero=True)
    if options["sleep_seconds"] is not None:
        _positive(options, "sleep_seconds", options["sleep_seconds"])
    sizes = {}
    for name, (full, least) in FULL_SIZES.items():
        given = options.get(name)
        if given is not None and given < least:
            raise CommandError(f"--{name.replace('_', '-')} must be at least {least}.")
        sizes[name] = given if given is not None else max(least, round(full * options["scale"]))
    chosen = options["shape"] or ["all"]
    shapes = list(SHAPES) if "all" in chosen else [s for s in SHAPES if s in chosen]
    kind = options["fanout_kind"]
    pgbench = options["pgbench"] if options["pgbench"] is not None else "all" in chosen
    return BenchConfig(
        shapes=shapes,
        mode=options["mode"],
        workers=options["workers"],
        procs=options["procs"],
        batch=options["batch"],
        tick=options["tick"],
        sizes=sizes,
        fanout_kinds=list(FANOUT_KINDS) if kind == "both" else [kind],
        fanout_seconds=options["fanout_seconds"],
        sleep_seconds=options["sleep_seconds"],
        idle_seconds=options["idle_seconds"],
        settle=options["settle"],
        stall=options["stall"],
        pgbench=pgbench,
        pgbench_seconds=options["pgbench_seconds"],
        json=options["json"],
        argv={key: options[key] for key in ("mode", "workers", "procs", "batch", "tick")}
        | {"scale": options["scale"], "shapes": shapes, "sizes": sizes},
    )
