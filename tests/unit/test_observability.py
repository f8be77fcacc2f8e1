"""The observability package on its own: log fields and their filter, the trace carrier, the
metrics hook and its setting (no database)."""

import importlib.util
import io
import logging
import re
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.utils.module_loading import import_string

from django_durable.checks import check_durable_settings
from django_durable.management.commands import durable_worker
from django_durable.observability import logs, tracing
from django_durable.observability import metrics as metrics_module
from django_durable.observability.metrics import (
    Metrics,
    NoMetrics,
    PrometheusMetrics,
    metrics,
    settings_problem,
)
from django_durable.store import ActivityClaim, WorkflowClaim

EXECUTION = uuid.UUID("12345678-1234-5678-1234-567812345678")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


def workflow_claim() -> WorkflowClaim:
    return WorkflowClaim(EXECUTION, "shop.order", None, None, "w1", epoch=1, inbox_version=0)


def activity_claim(**options) -> ActivityClaim:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return ActivityClaim(
        task_id=7,
        execution_id=EXECUTION,
        command_seq=3,
        activity_name="shop.charge",
        args=[],
        kwargs={},
        attempt=2,
        owner="w1",
        options=options,
        heartbeat_details=None,
        scheduled_at=now,
        started_at=now,
    )


def record(**extra) -> logging.LogRecord:
    return logging.getLogger("django_durable.test").makeRecord(
        "django_durable.test", logging.WARNING, __file__, 1, "Something %s", ("happened",), None,
        extra=extra,
    )  # fmt: skip


# -- log fields --------------------------------------------------------------------------


def test_about_a_workflow_claim_names_its_execution():
    assert logs.about(workflow_claim()) == {
        "execution_id": str(EXECUTION),
        "workflow_name": "shop.order",
    }


def test_about_an_activity_claim_names_its_attempt():
    assert logs.about(activity_claim()) == {
        "execution_id": str(EXECUTION),
        "activity_name": "shop.charge",
        "attempt": 2,
    }


def test_about_keywords_sets_only_what_is_known():
    assert logs.about(execution_id=EXECUTION) == {"execution_id": str(EXECUTION)}
    assert logs.about() == {}


def test_the_filter_fills_missing_fields_so_a_format_naming_them_never_fails():
    formatter = logging.Formatter("%(execution_id)s %(workflow_name)s %(attempt)s %(message)s")
    bare = record()
    assert logs.ExecutionFields().filter(bare) is True
    assert formatter.format(bare) == "- - - Something happened"
    assert bare.durable_context == ""


def test_the_filter_keeps_the_fields_a_record_carries_and_lists_them():
    about = record(**logs.about(activity_claim()))
    logs.ExecutionFields().filter(about)
    assert about.workflow_name == "-"
    assert about.durable_context == (
        f" [execution_id={EXECUTION} activity_name=shop.charge attempt=2]"
    )
    logs.ExecutionFields().filter(about)  # a second handler filters the same record again
    assert about.durable_context == (
        f" [execution_id={EXECUTION} activity_name=shop.charge attempt=2]"
    )


def test_without_the_filter_a_format_naming_the_fields_fails():
    """What the filter is for: the standard formatter has no defaults for extra fields."""
    formatter = logging.Formatter("%(execution_id)s %(message)s")
    with pytest.raises(ValueError, match="execution_id"):
        formatter.format(record())


def test_records_made_in_a_scope_carry_its_fields():
    handler = ListHandler()
    inner = logging.getLogger("django_durable.tests.scoped")
    inner.addHandler(handler)
    scoped = logs.ScopedLogger(inner)
    try:
        scoped.warning("outside")
        logs.call_in_scope(logs.about(workflow_claim()), scoped.warning, "inside")
        logs.call_in_scope({"attempt": 1}, lambda: scoped.warning("mine", extra={"attempt": 2}))
    finally:
        inner.removeHandler(handler)
    outside, inside, mine = handler.records
    assert not hasattr(outside, "execution_id")
    assert (inside.execution_id, inside.workflow_name) == (str(EXECUTION), "shop.order")
    assert mine.attempt == 2  # an explicit extra wins over the scope


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def documented_logging() -> dict:
    """The `LOGGING` example of docs/observability.md, as the docs show it."""
    block = re.search(
        r"```python\n# settings.py\n(LOGGING = \{.*?\n\})\n```", DOCS.read_text(), re.S
    )
    namespace: dict = {}
    exec(block.group(1), namespace)
    return namespace["LOGGING"]


@pytest.mark.parametrize("formatter_name", ["text", "fields"])
def test_the_documented_logging_example_formats_every_record(formatter_name):
    """Built as dictConfig builds it (not applied: that would close pytest's handlers)."""
    config = documented_logging()
    [filter_name] = config["handlers"]["console"]["filters"]
    execution_filter = import_string(config["filters"][filter_name]["()"])()
    formatter = logging.Formatter(config["formatters"][formatter_name]["format"])
    assert config["loggers"]["django_durable"]["handlers"] == ["console"]
    lines = []
    for each in (record(), record(**logs.about(activity_claim()))):
        execution_filter.filter(each)
        lines.append(formatter.format(each))
    assert "Something happened" in lines[0]
    assert str(EXECUTION) in lines[1] and "shop.charge" in lines[1]


def test_the_worker_logs_to_stderr_with_the_fields_when_nothing_else_is_configured(monkeypatch):
    monkeypatch.setattr(logging.root, "handlers", [])
    monkeypatch.setattr(logging.root, "level", logging.root.level)
    monkeypatch.setattr(logging.getLogger("django_durable"), "handlers", [])
    durable_worker._log_to_stderr(verbosity=1)
    [handler] = logging.root.handlers
    assert logging.root.level == logging.WARNING
    handler.stream = io.StringIO()
    logging.getLogger("django_durable.engine.test").warning(
        "Parking %s.", "it", extra=logs.about(workflow_claim())
    )
    logging.getLogger("django_durable.engine.test").warning("Lost the connection.")
    parked, lost = handler.stream.getvalue().splitlines()
    assert parked.endswith(
        f"WARNING django_durable.engine.test: Parking it. "
        f"[execution_id={EXECUTION} workflow_name=shop.order]"
    )
    assert lost.endswith("WARNING django_durable.engine.test: Lost the connection.")


def test_the_worker_leaves_a_configured_logging_alone(monkeypatch):
    configured = logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(logging.root, "handlers", [configured])
    durable_worker._log_to_stderr(verbosity=2)
    assert logging.root.handlers == [configured]


# -- tracing -----------------------------------------------------------------------------


def test_a_carried_context_parents_a_span_started_elsewhere(tracer):
    with tracing.span("start", kind="producer") as start:
        carrier = tracing.current_carrier()
    assert set(carrier) == {"traceparent"}
    later = tracing.start_span("task", parent=carrier, attributes={"durable.n": 1})
    tracing.finish(later, error="parked", outcome="parked")
    _, task = tracer.exporter.get_finished_spans()
    assert task.parent.span_id == start.get_span_context().span_id
    assert task.context.trace_id == start.get_span_context().trace_id
    assert dict(task.attributes) == {"durable.n": 1, "durable.outcome": "parked"}
    assert task.status.description == "parked"


def test_a_span_not_made_current_carries_its_own_context(tracer):
    task = tracing.start_span("task")
    carrier = tracing.carrier_of(task)
    assert carrier["traceparent"].split("-")[2] == f"{task.get_span_context().span_id:016x}"
    assert tracing.current_carrier() == {}  # it was not made current


def test_attributes_are_what_opentelemetry_accepts(tracer):
    assert tracing.attributes_of(activity_claim(), task_id=7, missing=None) == {
        "durable.execution_id": EXECUTION,
        "durable.activity_name": "shop.charge",
        "durable.attempt": 2,
        "durable.task_id": 7,
    }
    with tracing.span("x", attributes=tracing.attributes_of(workflow_claim())):
        pass
    [span] = tracer.exporter.get_finished_spans()
    assert dict(span.attributes) == {
        "durable.execution_id": str(EXECUTION),  # a UUID goes as its text
        "durable.workflow_name": "shop.order",
    }


def test_without_opentelemetry_every_call_does_nothing(tracer, monkeypatch):
    monkeypatch.setattr(tracing, "trace", None)  # as if the import had failed
    with tracing.span("start") as start:
        assert tracing.current_carrier() == {}
    later = tracing.start_span(
        "task", parent={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    )
    tracing.set_attributes(later, outcome="x")
    tracing.record_error(later, ValueError("no"))
    tracing.finish(later, error="no")
    assert start is later is tracing.NO_SPAN
    assert tracing.carrier_of(later) == {}
    assert tracer.exporter.get_finished_spans() == ()


# -- metrics -----------------------------------------------------------------------------


def test_every_backend_implements_every_report():
    reports = {name for name in vars(Metrics) if not name.startswith("_")}
    assert reports == {
        "workflow_task",
        "activity_attempt",
        "activity_seconds",
        "claim",
        "record",
        "queue_depth",
        "due_lag",
        "watch_due_work",
    }
    for backend in (NoMetrics, PrometheusMetrics):
        assert reports <= set(vars(backend))


def test_prometheus_metrics_land_in_their_registry():
    client = pytest.importorskip("prometheus_client")
    registry = client.CollectorRegistry()
    report = PrometheusMetrics(registry)
    report.workflow_task("shop.order", "waiting", 0.01)
    report.activity_attempt("shop.charge", "retried")
    report.activity_seconds("shop.charge", 2.0)
    report.claim("activity", 3, 0.002)
    report.record("workflow_task", 5, 0.004)
    report.queue_depth("activity", 4)
    report.due_lag("activity", -0.001)  # clocks of two hosts: never below 0

    def value(name, **labels):
        return registry.get_sample_value(name, labels)

    assert value("durable_workflow_tasks_total", workflow="shop.order", outcome="waiting") == 1
    assert value("durable_workflow_task_seconds_sum", workflow="shop.order") == 0.01
    assert value("durable_activity_attempts_total", activity="shop.charge", outcome="retried") == 1
    assert value("durable_activity_attempt_seconds_sum", activity="shop.charge") == 2.0
    assert value("durable_claimed_total", kind="activity") == 3
    assert value("durable_claim_seconds_count", kind="activity") == 1
    assert value("durable_recorded_total", kind="workflow_task") == 5
    assert value("durable_record_seconds_sum", kind="workflow_task") == 0.004
    assert value("durable_worker_queue_depth", kind="activity") == 4
    assert value("durable_due_lag_seconds_sum", kind="activity") == 0.0


def test_due_work_is_read_at_each_scrape_and_only_then():
    client = pytest.importorskip("prometheus_client")
    registry = client.CollectorRegistry()
    reads = []

    def read():
        reads.append(1)
        return {
            "activity": {"count": 3, "oldest": {"lag_seconds": 1.5}},
            "workflow_task": {"count": 0, "oldest": None},
        }

    PrometheusMetrics(registry).watch_due_work(read)
    assert reads == []  # registering reads nothing
    assert registry.get_sample_value("durable_due_work", {"kind": "activity"}) == 3
    assert registry.get_sample_value("durable_due_work_lag_seconds", {"kind": "activity"}) == 1.5
    assert registry.get_sample_value("durable_due_work", {"kind": "workflow_task"}) == 0
    assert len(reads) == 3


def test_a_failed_read_of_due_work_leaves_only_its_gauges_out(caplog):
    client = pytest.importorskip("prometheus_client")
    registry = client.CollectorRegistry()
    report = PrometheusMetrics(registry)

    def read():
        raise RuntimeError("database is away")

    report.watch_due_work(read)
    report.claim("activity", 1, 0.01)
    with caplog.at_level(logging.WARNING, logger="django_durable"):
        text = client.generate_latest(registry).decode()
    assert "durable_claimed_total" in text
    assert "durable_due_work{" not in text
    assert caplog.messages == ["Could not read the due work for the metrics (database is away)."]


@pytest.mark.parametrize(
    "value",
    [
        None,
        "prometheus",
        {"BACKEND": "prometheus", "PORT": 9464},
        {"BACKEND": "prometheus", "PORT": 9464, "ADDR": "127.0.0.1"},
        {"BACKEND": "django_durable.observability.metrics.NoMetrics"},
    ],
)
def test_valid_metrics_settings(value):
    pytest.importorskip("prometheus_client")
    assert settings_problem(value) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (1, "DURABLE['METRICS'] must be None, 'prometheus', or a dict with a 'BACKEND'."),
        ({"PORT": 9464}, "DURABLE['METRICS']['BACKEND'] must be 'prometheus' or a dotted path."),
        ({"BACKEND": "prometheus", "HOST": "x"}, "DURABLE['METRICS'] has unknown key(s) 'HOST'."),
        (
            {"BACKEND": "prometheus", "PORT": "9464"},
            "DURABLE['METRICS']['PORT'] must be a TCP port number (1 to 65535).",
        ),
        (
            {"BACKEND": "prometheus", "PORT": 0},
            "DURABLE['METRICS']['PORT'] must be a TCP port number (1 to 65535).",
        ),
        (
            {"BACKEND": "django_durable.observability.metrics.NoMetrics", "PORT": 9464},
            "DURABLE['METRICS']['PORT'] is for the 'prometheus' backend only.",
        ),
        (
            {"BACKEND": "prometheus", "ADDR": 0},
            "DURABLE['METRICS']['ADDR'] must be an address to listen on, as a string.",
        ),
        (
            "no.such.Backend",
            "DURABLE['METRICS']['BACKEND'] 'no.such.Backend' cannot be imported: "
            "No module named 'no'",
        ),
    ],
)
def test_invalid_metrics_settings(value, problem):
    assert settings_problem(value) == problem


def test_prometheus_without_prometheus_client_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(metrics_module, "prometheus_client", None)  # as if not installed
    message = (
        "DURABLE['METRICS'] asks for Prometheus, but prometheus_client is not installed: "
        "pip install 'django-durable[prometheus]'."
    )
    assert settings_problem("prometheus") == message
    with override_settings(DURABLE={"METRICS": "prometheus"}):
        [error] = check_durable_settings()
        assert (error.id, error.msg) == ("django_durable.E008", message)
        with pytest.raises(ImproperlyConfigured, match="prometheus_client is not installed"):
            metrics()


def test_the_setting_chooses_the_backend_and_a_change_is_seen():
    assert isinstance(metrics(), NoMetrics)
    with override_settings(DURABLE={"METRICS": {"BACKEND": __name__ + ".CountingMetrics"}}):
        metrics().claim("activity", 3, 0.01)
        metrics().claim("activity", 2, 0.01)
        assert metrics() is metrics()  # built once
        assert metrics()._backend.claimed == 5
    assert isinstance(metrics(), NoMetrics)


def test_a_failing_backend_of_your_own_is_logged_once_and_never_raises(caplog):
    with override_settings(DURABLE={"METRICS": {"BACKEND": __name__ + ".FailingMetrics"}}):
        with caplog.at_level(logging.ERROR, logger="django_durable"):
            metrics().record("workflow_task", 1, 0.01)
            metrics().record("workflow_task", 1, 0.01)
            metrics().queue_depth("activity", 0)  # the others still report
    assert caplog.messages == ["The metrics backend failed to report record."]


class CountingMetrics(NoMetrics):
    """A backend of a project's own (see docs/observability.md)."""

    def __init__(self) -> None:
        self.claimed = 0

    def claim(self, kind: str, claimed: int, seconds: float) -> None:
        self.claimed += claimed


class FailingMetrics(NoMetrics):
    def record(self, kind: str, recorded: int, seconds: float) -> None:
        raise ConnectionError("statsd is away")


# -- without the extras ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "package", "guarded"),
    [
        (tracing, "opentelemetry", "trace"),
        (metrics_module, "prometheus_client", "prometheus_client"),
    ],
)
def test_the_modules_import_without_their_extras(monkeypatch, module, package, guarded):
    """Each module imported afresh while its package cannot be imported."""
    monkeypatch.setitem(sys.modules, package, None)  # `import package` raises ImportError
    spec = importlib.util.spec_from_file_location(f"{module.__name__}_probe", module.__file__)
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    assert getattr(fresh, guarded) is None
    if fresh.__name__.endswith("tracing_probe"):
        assert fresh.current_carrier() == {}
        assert fresh.start_span("x") is fresh.NO_SPAN
    else:
        assert fresh.settings_problem("prometheus").startswith("DURABLE['METRICS'] asks for")
        assert isinstance(fresh.metrics(), fresh.NoMetrics)
