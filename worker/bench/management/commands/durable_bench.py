"""`manage.py durable_bench`: throughput and signal latency of one real worker process."""

from __future__ import annotations

import json
import os
import platform
import sys

import django
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from ...phases import (
    delete_bench_executions,
    measure_latency,
    measure_throughput,
    warm_up,
)
from ...worker_process import WorkerProcess

READY_SECONDS = 120.0
STOP_SECONDS = 60.0


def _database_version() -> str:
    if connection.vendor == "sqlite":
        return connection.Database.sqlite_version
    connection.ensure_connection()
    version = getattr(connection, "pg_version", None)
    if connection.vendor == "postgresql" and version:
        return f"{version // 10000}.{version % 10000}"
    return ".".join(map(str, connection.mysql_version)) if connection.vendor == "mysql" else "?"


class Command(BaseCommand):
    help = (
        "Benchmark a durable worker subprocess: one-activity workflows per second and "
        "signal-to-resume latency."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--workflows", type=int, default=1000, help="One-activity workflows to run (N)."
        )
        parser.add_argument("--procs", type=int, default=4, help="Worker --procs.")
        parser.add_argument("--batch", type=int, default=50, help="Worker --batch.")
        parser.add_argument("--tick", type=float, default=0.2, help="Worker --tick (seconds).")
        parser.add_argument(
            "--latency-samples", type=int, default=20, help="Signal round trips to time (K)."
        )
        parser.add_argument("--json", action="store_true", help="Print only the JSON line.")

    def handle(self, *args, **options):
        for name in ("workflows", "procs", "batch", "latency_samples"):
            if options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1.")
        if options["tick"] <= 0:
            raise CommandError("--tick must be positive.")
        quiet = options["json"]

        def say(text: str) -> None:
            if not quiet:
                self.stdout.write(text)
                self.stdout.flush()

        deleted = delete_bench_executions()
        say(f"Deleted {deleted} previous bench execution(s).")
        worker = WorkerProcess(procs=options["procs"], batch=options["batch"], tick=options["tick"])
        worker.start()
        try:
            worker.wait_registered(READY_SECONDS)
            warm_up(options["procs"], worker.check_alive)
            say(f"Worker {worker.pid} is up (log: {worker.log_path}).")
            say(f"Throughput: {options['workflows']} x bench.one_activity ...")
            throughput = measure_throughput(options["workflows"], worker.check_alive)
            say(f"Latency: {options['latency_samples']} x bench.wait_for_signal ...")
            latency = measure_latency(options["latency_samples"], worker.check_alive)
            exit_code = worker.stop(STOP_SECONDS)
        except BaseException:
            worker.kill()
            sys.stderr.write(worker.log_tail() + "\n")
            raise
        report = {
            "database": connection.vendor,
            "database_version": _database_version(),
            "python": platform.python_version(),
            "django": django.get_version(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "options": {
                key: options[key]
                for key in ("workflows", "procs", "batch", "tick", "latency_samples")
            },
            "start_seconds": round(throughput.start_seconds, 3),
            "starts_per_s": round(throughput.starts_per_second, 1),
            "wall_seconds": round(throughput.wall_seconds, 3),
            "workflows_per_s": round(throughput.workflows_per_second, 1),
            "latency_ms": {
                "median": round(latency.median_ms, 1),
                "p90": round(latency.p90_ms, 1),
                "max": round(latency.max_ms, 1),
            },
            "worker_exit_code": exit_code,
            "worker_log_lines": len(worker.log_lines()),
        }
        if not quiet:
            self._print_report(report, worker.log_path)
        self.stdout.write(json.dumps(report, sort_keys=True))

    def _print_report(self, report: dict, log_path: str) -> None:
        opts = report["options"]
        latency = report["latency_ms"]
        lines = [
            "",
            "django-durable benchmark",
            f"  database   {report['database']} {report['database_version']}",
            f"  software   Python {report['python']}, Django {report['django']}",
            f"  machine    {report['cpu_count']} CPUs, {report['platform']}",
            f"  options    --workflows {opts['workflows']} --procs {opts['procs']} "
            f"--batch {opts['batch']} --tick {opts['tick']} "
            f"--latency-samples {opts['latency_samples']}",
            f"  starts     {report['starts_per_s']:.1f} starts/s "
            f"({opts['workflows']} in {report['start_seconds']:.3f} s)",
            f"  throughput {report['workflows_per_s']:.1f} workflows/s "
            f"({opts['workflows']} in {report['wall_seconds']:.3f} s, first start to last end)",
            f"  latency    signal to resume: median {latency['median']:.1f} ms, "
            f"p90 {latency['p90']:.1f} ms, max {latency['max']:.1f} ms",
            f"  worker     exit code {report['worker_exit_code']}, "
            f"{report['worker_log_lines']} log line(s) in {log_path}",
            "",
        ]
        self.stdout.write("\n".join(lines))
