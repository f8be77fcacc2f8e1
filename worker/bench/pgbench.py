"""The yardstick: PostgreSQL's own commit rate on this machine, measured by `pgbench`.

A scratch table, a one-row INSERT per transaction, 1 and then 4 clients for a few seconds
each: what the server and its disk allow, to set the engine's figures beside.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

from django.db import connection

TABLE = "durable_bench_pgbench"
_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)


def run_pgbench(seconds: int, clients: tuple[int, ...] = (1, 4)) -> dict:
    """{"clients_1_tps": ..., "clients_4_tps": ...}, or {"skipped": why}."""
    if connection.vendor != "postgresql":
        return {"skipped": "not PostgreSQL"}
    binary = shutil.which("pgbench") or next(
        (path for path in ("/usr/bin/pgbench",) if os.access(path, os.X_OK)), None
    )
    if binary is None:
        return {"skipped": "pgbench not found (Debian: postgresql-client or postgresql-contrib)"}
    settings = connection.settings_dict
    env = {**os.environ}
    if settings.get("PASSWORD"):
        env["PGPASSWORD"] = settings["PASSWORD"]
    args = [binary, "-n", "-T", str(seconds), "-d", settings["NAME"]]
    for flag, key in (("-h", "HOST"), ("-p", "PORT"), ("-U", "USER")):
        if settings.get(key):
            args += [flag, str(settings[key])]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
        cursor.execute(f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, v integer NOT NULL)")
    figures: dict = {"seconds": seconds, "script": f"INSERT INTO {TABLE} (v) VALUES (1)"}
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
            script.write(f"INSERT INTO {TABLE} (v) VALUES (1);\n")
        for count in clients:
            done = subprocess.run(
                [*args, "-c", str(count), "-j", str(count), "-f", script.name],
                capture_output=True,
                text=True,
                env=env,
                timeout=seconds + 60,
            )
            match = _TPS.search(done.stdout)
            if done.returncode != 0 or match is None:
                return {"skipped": f"pgbench failed: {(done.stderr or done.stdout).strip()[-300:]}"}
            figures[f"clients_{count}_tps"] = round(float(match.group(1)), 1)
    finally:
        os.unlink(script.name)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
    return figures
