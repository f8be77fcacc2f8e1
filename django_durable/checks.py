"""System checks for the `DURABLE` settings and the database the engine runs on."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from .conf import DEFAULTS
from .observability.metrics import settings_problem as metrics_problem
from .registry import RetryPolicy


@register(Tags.compatibility)
def check_durable_settings(app_configs=None, **kwargs):
    errors = []
    user = getattr(settings, "DURABLE", {})
    if not isinstance(user, dict):
        return [Error("DURABLE must be a dict.", id="django_durable.E001")]
    for key in sorted(set(user) - set(DEFAULTS)):
        errors.append(
            Error(
                f"DURABLE has an unknown key {key!r}.",
                hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                id="django_durable.E002",
            )
        )
    alias = user.get("DATABASE", DEFAULTS["DATABASE"])
    if alias not in settings.DATABASES:
        errors.append(
            Error(
                f"DURABLE['DATABASE'] names {alias!r}, which is not in DATABASES.",
                id="django_durable.E003",
            )
        )
    for key in ("LEASE_SECONDS", "SWEEP_SECONDS", "MAX_PAYLOAD_BYTES", "WORKFLOW_TASK_TIMEOUT"):
        value = user.get(key, DEFAULTS[key])
        if not isinstance(value, int | float) or value <= 0:
            errors.append(
                Error(f"DURABLE[{key!r}] must be a positive number.", id="django_durable.E004")
            )
    try:
        RetryPolicy.from_dict(user.get("RETRY_POLICY", DEFAULTS["RETRY_POLICY"]))
    except (TypeError, ValueError, ImproperlyConfigured, AttributeError) as exc:
        errors.append(
            Error(
                f"DURABLE['RETRY_POLICY'] is not a valid retry policy: {exc}",
                hint="Use keyword arguments of django_durable.RetryPolicy.",
                id="django_durable.E006",
            )
        )
    size = user.get("STICKY_CACHE_SIZE", DEFAULTS["STICKY_CACHE_SIZE"])
    if not isinstance(size, int) or size < 0:
        errors.append(
            Error(
                "DURABLE['STICKY_CACHE_SIZE'] must be a whole number, 0 to replay every task.",
                id="django_durable.E005",
            )
        )
    per_process = user.get("ASYNC_ACTIVITIES_PER_PROCESS", DEFAULTS["ASYNC_ACTIVITIES_PER_PROCESS"])
    if not isinstance(per_process, int) or isinstance(per_process, bool) or per_process < 1:
        errors.append(
            Error(
                "DURABLE['ASYNC_ACTIVITIES_PER_PROCESS'] must be a whole number, at least 1.",
                id="django_durable.E007",
            )
        )
    if problem := metrics_problem(user.get("METRICS", DEFAULTS["METRICS"])):
        errors.append(
            Error(
                problem,
                hint="See docs/observability.md for the forms DURABLE['METRICS'] takes.",
                id="django_durable.E008",
            )
        )
    if problem := _listen_database_problem(user.get("LISTEN_DATABASE")):
        errors.append(
            Error(
                problem,
                hint="An alias of DATABASES, or a libpq string such as "
                "'postgresql://user@db-host:5432/name' (see docs/pgbouncer.md).",
                id="django_durable.E009",
            )
        )
    if alias in settings.DATABASES and connections[alias].vendor == "sqlite":
        mode = str(connections[alias].settings_dict["OPTIONS"].get("transaction_mode") or "")
        if mode.upper() not in ("IMMEDIATE", "EXCLUSIVE"):
            errors.append(
                Warning(
                    f"SQLite with transaction_mode {mode or 'DEFERRED'!r} fails with "
                    "'database is locked' when a worker and other processes write at once.",
                    hint="Leave OPTIONS['transaction_mode'] unset (django_durable makes it "
                    "IMMEDIATE) or set it to 'IMMEDIATE'.",
                    id="django_durable.W001",
                )
            )
    return errors


def _listen_database_problem(target) -> str | None:
    """Why `DURABLE["LISTEN_DATABASE"]` cannot be used, or None. The value itself is never
    repeated: a connection string may hold a password."""
    if target is None:
        return None
    if not isinstance(target, str) or not target.strip():
        return "DURABLE['LISTEN_DATABASE'] must be an alias of DATABASES or a libpq string."
    if target in settings.DATABASES:
        if connections[target].vendor != "postgresql":
            return f"DURABLE['LISTEN_DATABASE'] names {target!r}, which is not PostgreSQL."
        return None
    try:
        import psycopg

        psycopg.conninfo.conninfo_to_dict(target)
    except ImportError:
        return "DURABLE['LISTEN_DATABASE'] needs psycopg (PostgreSQL) installed."
    except psycopg.ProgrammingError:
        return (
            "DURABLE['LISTEN_DATABASE'] is neither an alias of DATABASES nor a connection "
            "string libpq can parse."
        )
    return None
