"""Counters and histograms of the engine's work, through one small hook.

The engine reports what it did to `metrics()`, a `Metrics`. By default that is `NoMetrics`,
whose every method does nothing: the hot path pays a method call. `DURABLE["METRICS"]`
chooses another:

    "prometheus"                               prometheus_client's default registry
    {"BACKEND": "prometheus", "PORT": 9464}    ...and the worker serves it on that port
    {"BACKEND": "myproject.metrics.Statsd"}    a class (or factory) of your own, no arguments

The `[prometheus]` extra installs `prometheus_client`. The worker process records the
metrics (activity processes only run code), so a scrape of the worker sees all of them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from ..conf import durable_setting

try:
    import prometheus_client
except ImportError:  # the [prometheus] extra is not installed
    prometheus_client = None

logger = logging.getLogger(__name__)

# What `watch_due_work` reads: {kind: {"count": n, "oldest": {"lag_seconds": s} or None}}.
DueWork = Mapping[str, Mapping[str, Any]]


class Metrics(Protocol):
    """What the engine reports. Labels are low-cardinality: workflow and activity names
    (those registered), an outcome or a kind from a short fixed list."""

    def workflow_task(self, workflow_name: str, outcome: str, seconds: float) -> None:
        """A workflow task ended: "waiting" (recorded, the workflow waits), "ended"
        (recorded, the execution ended), "parked" or "lease_lost"; `seconds` from the
        start of its activation to its batch's commit."""

    def activity_attempt(self, activity_name: str, outcome: str) -> None:
        """An attempt's fate was settled: "completed", "retried", "failed", "timed_out"
        (recorded so), "discarded" (no longer current), "canceled", "released" (given back
        uncharged) or "unrecorded" (the database stayed away; its lease expires)."""

    def activity_seconds(self, activity_name: str, seconds: float) -> None:
        """An attempt ran for `seconds` (from its start in a process to its outcome)."""

    def claim(self, kind: str, claimed: int, seconds: float) -> None:
        """A claim query of `kind` ("workflow_task", "activity") took `claimed` rows."""

    def record(self, kind: str, recorded: int, seconds: float) -> None:
        """A transaction recorded `recorded` workflow tasks or activity outcomes."""

    def queue_depth(self, kind: str, depth: int) -> None:
        """Work this worker holds but has not started: "activity" (attempts waiting for a
        process), "workflow_task" (claims waiting for a batch), "activity_running"."""

    def due_lag(self, kind: str, seconds: float) -> None:
        """Work of `kind` started `seconds` after it was due (first activity attempts)."""

    def watch_due_work(self, read: Callable[[], DueWork]) -> None:
        """Report the database's due work that no worker holds whenever the metrics are
        read (a scrape), as `read()` (which queries) says: the worker calls this once."""


class NoMetrics:
    """The default: every report is dropped."""

    def workflow_task(self, workflow_name: str, outcome: str, seconds: float) -> None:
        pass

    def activity_attempt(self, activity_name: str, outcome: str) -> None:
        pass

    def activity_seconds(self, activity_name: str, seconds: float) -> None:
        pass

    def claim(self, kind: str, claimed: int, seconds: float) -> None:
        pass

    def record(self, kind: str, recorded: int, seconds: float) -> None:
        pass

    def queue_depth(self, kind: str, depth: int) -> None:
        pass

    def due_lag(self, kind: str, seconds: float) -> None:
        pass

    def watch_due_work(self, read: Callable[[], DueWork]) -> None:
        pass


QUICK = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LONG = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class PrometheusMetrics:
    """`Metrics` as prometheus_client counters, histograms and a gauge, in `registry`."""

    def __init__(self, registry: Any = None) -> None:
        if prometheus_client is None:
            raise ImproperlyConfigured(_MISSING_PROMETHEUS)
        client = prometheus_client
        registry = registry if registry is not None else client.REGISTRY
        self._workflow_tasks = client.Counter(
            "durable_workflow_tasks",
            "Workflow tasks run, by workflow and outcome.",
            ["workflow", "outcome"],
            registry=registry,
        )
        self._workflow_task_seconds = client.Histogram(
            "durable_workflow_task_seconds",
            "Seconds from a workflow task's activation to its batch's commit.",
            ["workflow"],
            buckets=QUICK,
            registry=registry,
        )
        self._activity_attempts = client.Counter(
            "durable_activity_attempts",
            "Activity attempts settled, by activity and outcome.",
            ["activity", "outcome"],
            registry=registry,
        )
        self._activity_seconds = client.Histogram(
            "durable_activity_attempt_seconds",
            "Seconds an activity attempt ran, from its start in a process to its outcome.",
            ["activity"],
            buckets=LONG,
            registry=registry,
        )
        self._claimed = client.Counter(
            "durable_claimed", "Rows claimed, by kind.", ["kind"], registry=registry
        )
        self._claim_seconds = client.Histogram(
            "durable_claim_seconds",
            "Seconds a claim query took, by kind.",
            ["kind"],
            buckets=QUICK,
            registry=registry,
        )
        self._recorded = client.Counter(
            "durable_recorded",
            "Workflow tasks and activity outcomes recorded, by kind.",
            ["kind"],
            registry=registry,
        )
        self._record_seconds = client.Histogram(
            "durable_record_seconds",
            "Seconds a recording transaction took, by kind.",
            ["kind"],
            buckets=QUICK,
            registry=registry,
        )
        self._queue_depth = client.Gauge(
            "durable_worker_queue_depth",
            "Work this worker holds and has not started, by kind.",
            ["kind"],
            registry=registry,
        )
        self._due_lag = client.Histogram(
            "durable_due_lag_seconds",
            "Seconds between when work was due and when it started, by kind.",
            ["kind"],
            buckets=LONG,
            registry=registry,
        )
        self._registry = registry
        self._due_work: _DueWorkCollector | None = None

    def workflow_task(self, workflow_name: str, outcome: str, seconds: float) -> None:
        self._workflow_tasks.labels(workflow_name, outcome).inc()
        self._workflow_task_seconds.labels(workflow_name).observe(seconds)

    def activity_attempt(self, activity_name: str, outcome: str) -> None:
        self._activity_attempts.labels(activity_name, outcome).inc()

    def activity_seconds(self, activity_name: str, seconds: float) -> None:
        self._activity_seconds.labels(activity_name).observe(seconds)

    def claim(self, kind: str, claimed: int, seconds: float) -> None:
        self._claimed.labels(kind).inc(claimed)
        self._claim_seconds.labels(kind).observe(seconds)

    def record(self, kind: str, recorded: int, seconds: float) -> None:
        self._recorded.labels(kind).inc(recorded)
        self._record_seconds.labels(kind).observe(seconds)

    def queue_depth(self, kind: str, depth: int) -> None:
        self._queue_depth.labels(kind).set(depth)

    def due_lag(self, kind: str, seconds: float) -> None:
        self._due_lag.labels(kind).observe(max(0.0, seconds))

    def watch_due_work(self, read: Callable[[], DueWork]) -> None:
        if self._due_work is None:
            self._due_work = _DueWorkCollector(read)
            self._registry.register(self._due_work)
        self._due_work.read = read


class _DueWorkCollector:
    """Gauges of the due work no worker holds, read from the database at each scrape (and
    only then): `durable_due_work` (rows, counted up to a cap) and
    `durable_due_work_lag_seconds` (how long the oldest has waited), by kind."""

    def __init__(self, read: Callable[[], DueWork]) -> None:
        self.read = read

    def describe(self) -> list:
        return list(self._families({}))  # the names alone: registering reads nothing

    def collect(self) -> Iterator:
        try:
            due = self.read()
        except Exception as exc:  # a scrape must not fail for it: these gauges are left out
            logger.warning("Could not read the due work for the metrics (%s).", exc)
            return iter(())
        return self._families(due)

    def _families(self, due: DueWork) -> Iterator:
        from prometheus_client.core import GaugeMetricFamily

        count = GaugeMetricFamily(
            "durable_due_work",
            "Due work no worker holds, in the database (counted up to a cap), by kind.",
            labels=["kind"],
        )
        lag = GaugeMetricFamily(
            "durable_due_work_lag_seconds",
            "Seconds the oldest due work no worker holds has waited, by kind.",
            labels=["kind"],
        )
        for kind, summary in sorted(due.items()):
            count.add_metric([kind], summary["count"])
            oldest = summary.get("oldest")
            lag.add_metric([kind], oldest["lag_seconds"] if oldest else 0.0)
        yield count
        yield lag


_MISSING_PROMETHEUS = (
    "DURABLE['METRICS'] asks for Prometheus, but prometheus_client is not installed: "
    "pip install 'django-durable[prometheus]'."
)
_lock = threading.Lock()
_current: Metrics | None = None  # built from the setting on first use
_default_registry_metrics: PrometheusMetrics | None = None  # one per process: names are unique


def _options(value: Any) -> dict[str, Any]:
    """The setting as a dict: {"BACKEND": ..., "PORT": ..., "ADDR": ...}."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {"BACKEND": value}
    return dict(value)


def settings_problem(value: Any) -> str | None:
    """What is wrong with `DURABLE["METRICS"]` (a sentence for the system check), or None."""
    if value is None:
        return None
    if not isinstance(value, str | Mapping):
        return "DURABLE['METRICS'] must be None, 'prometheus', or a dict with a 'BACKEND'."
    options = _options(value)
    unknown = sorted(set(options) - {"BACKEND", "PORT", "ADDR"})
    if unknown:
        return f"DURABLE['METRICS'] has unknown key(s) {', '.join(map(repr, unknown))}."
    backend = options.get("BACKEND")
    if not isinstance(backend, str) or not backend:
        return "DURABLE['METRICS']['BACKEND'] must be 'prometheus' or a dotted path."
    port = options.get("PORT")
    if port is not None and (
        not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536
    ):
        return "DURABLE['METRICS']['PORT'] must be a TCP port number (1 to 65535)."
    if port is not None and backend != "prometheus":
        return "DURABLE['METRICS']['PORT'] is for the 'prometheus' backend only."
    if not isinstance(options.get("ADDR", ""), str):
        return "DURABLE['METRICS']['ADDR'] must be an address to listen on, as a string."
    if backend == "prometheus":
        return _MISSING_PROMETHEUS if prometheus_client is None else None
    try:
        import_string(backend)
    except ImportError as exc:
        return f"DURABLE['METRICS']['BACKEND'] {backend!r} cannot be imported: {exc}"
    return None


def _build() -> Metrics:
    global _default_registry_metrics
    backend = _options(durable_setting("METRICS")).get("BACKEND")
    if backend is None:
        return NoMetrics()
    if backend == "prometheus":
        if prometheus_client is None:
            raise ImproperlyConfigured(_MISSING_PROMETHEUS)
        if _default_registry_metrics is None:
            _default_registry_metrics = PrometheusMetrics()
        return _default_registry_metrics
    return _Guarded(import_string(backend)())


class _Guarded:
    """A backend of the project's own, whose errors are logged (once per report) and never
    raised into the engine: a metric is not worth a workflow task."""

    def __init__(self, backend: Metrics) -> None:
        self._backend = backend
        self._failed: set[str] = set()

    def __getattr__(self, name: str) -> Callable[..., None]:
        report = getattr(self._backend, name)

        def guarded(*args: Any) -> None:
            try:
                report(*args)
            except Exception:
                if name not in self._failed:
                    self._failed.add(name)
                    logger.exception("The metrics backend failed to report %s.", name)

        setattr(self, name, guarded)  # found here from now on, without __getattr__
        return guarded


def metrics() -> Metrics:
    """The configured `Metrics` (built on first use, again after the setting changes)."""
    current = _current
    if current is not None:
        return current
    return _configure()


def _configure() -> Metrics:
    global _current
    with _lock:
        if _current is None:
            _current = _build()
        return _current


def serve_metrics() -> int | None:
    """Serve the metrics over HTTP if `DURABLE["METRICS"]` names a `PORT` (the worker calls
    this once as it starts); return the port, or None. `OSError` if the port is taken."""
    options = _options(durable_setting("METRICS"))
    port = options.get("PORT")
    if port is None:
        return None
    metrics()  # registered before the first scrape, so that it lists them all
    prometheus_client.start_http_server(port, addr=options.get("ADDR", "0.0.0.0"))
    return port


@receiver(setting_changed)
def _forget_on_change(*, setting: str, **kwargs: Any) -> None:
    global _current
    if setting == "DURABLE":
        with _lock:
            _current = None
