"""`manage.py durable_bench`: the performance table, measured against real worker processes."""

from __future__ import annotations

import json
import shlex
import sys

from django.core.management.base import BaseCommand

from django_durable.management.progress import Progress

from ...options import add_arguments, resolve
from ...report import text
from ...runner import run


class Command(BaseCommand):
    help = (
        "Benchmark durable worker subprocesses: workflows/s (one, ten activities, fan-out, "
        "steps), latencies (single, signal, timers), start rates, PostgreSQL transactions, "
        "CPU and memory, beside pgbench. Every result is checked. See docs/benchmark.md."
    )

    def add_arguments(self, parser):
        add_arguments(parser)

    def handle(self, *args, **options):
        config = resolve(options)
        command_line = shlex.join(["durable_bench", *sys.argv[2:]])
        report = run(config, Progress(self.stderr), command_line)
        if not config.json:
            self.stdout.write(text(report))
        self.stdout.write(json.dumps(report, sort_keys=True, default=str))
