"""The `DURABLE` settings dict: defaults, and one accessor that merges the user's keys."""

from django.conf import settings

DEFAULTS = {
    # Database alias that holds the engine's tables.
    "DATABASE": "default",
    # PostgreSQL LISTEN/NOTIFY channel the worker is woken on.
    "CHANNEL": "django_durable",
    # The connection the worker LISTENs on: None (the DATABASE alias), another alias of
    # DATABASES, or a libpq string ("postgresql://..." or "host=... dbname=..."). LISTEN
    # needs a direct, session-level connection: behind PgBouncer in transaction mode, point
    # this at PostgreSQL itself (docs/pgbouncer.md).
    "LISTEN_DATABASE": None,
    # Seconds a claimed workflow task or activity stays owned without a heartbeat.
    "LEASE_SECONDS": 30.0,
    # Suspended workflows kept in memory per worker (sticky cache); 0 replays every task,
    # which tests can use to prove their workflows deterministic.
    "STICKY_CACHE_SIZE": 1000,
    # Largest JSON payload (input, result, signal) accepted, in bytes.
    "MAX_PAYLOAD_BYTES": 2 * 1024 * 1024,
    # Seconds workflow code may run in one workflow task without yielding; past it the task
    # is stopped and the execution parked (a busy loop or a blocking call such as time.sleep).
    "WORKFLOW_TASK_TIMEOUT": 2.0,
    # `async def` activity attempts one activity process runs at once, as tasks of its event
    # loop (a `def` attempt always has its process to itself).
    "ASYNC_ACTIVITIES_PER_PROCESS": 500,
    # Seconds between safety sweeps when woken by NOTIFY.
    "SWEEP_SECONDS": 30.0,
    # Retry policy of activities that set none (keyword arguments of RetryPolicy).
    "RETRY_POLICY": {
        "initial_interval": 1.0,
        "backoff_coefficient": 2.0,
        "maximum_interval": 100.0,
        "maximum_attempts": 3,
    },
    # Where the engine's metrics go: None (nowhere), "prometheus" (prometheus_client's
    # default registry), {"BACKEND": "prometheus", "PORT": 9464} (and the worker serves
    # it), or {"BACKEND": "dotted.path"} of a Metrics class. See docs/observability.md.
    "METRICS": None,
}


def durable_setting(key: str):
    """Return the value of `DURABLE[key]`, or its default."""
    return getattr(settings, "DURABLE", {}).get(key, DEFAULTS[key])
