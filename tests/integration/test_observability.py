"""Spans, metrics and log fields of real executions, driven inline through the store."""

import asyncio
import logging

import pytest
from django.conf import settings
from django.test import override_settings

from django_durable import send_signal, start_workflow, start_workflows
from django_durable.constants import EventKind, ExecutionStatus
from django_durable.engine import telemetry
from django_durable.models import ActivityTask, HistoryEvent
from django_durable.observability import metrics as metrics_module
from django_durable.observability import tracing
from django_durable.observability.metrics import NoMetrics, PrometheusMetrics, metrics
from django_durable.registry import WorkflowDefinition, register
from django_durable.store import start_execution

otel_sdk = pytest.importorskip("opentelemetry.sdk.trace")
prometheus_client = pytest.importorskip("prometheus_client")
from opentelemetry.trace import StatusCode  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def registry(monkeypatch):
    """The engine's metrics, into a registry of the test's own."""
    registry = prometheus_client.CollectorRegistry()
    monkeypatch.setattr(metrics_module, "_current", PrometheusMetrics(registry))
    return registry


def named(spans, prefix):
    return [span for span in spans if span.name.startswith(prefix)]


def attributes(span) -> dict:
    return dict(span.attributes)


def parent_of(span) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def ids_of(span) -> list[str]:
    """The trace and span ids of `span` as a W3C traceparent writes them."""
    return [f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"]


def started_data(execution_id) -> dict:
    return HistoryEvent.objects.get(execution_id=execution_id, kind=EventKind.WORKFLOW_STARTED).data


# -- traces ------------------------------------------------------------------------------


@pytest.mark.parametrize("cache_size", [1000, 0], ids=["sticky", "replaying"])
def test_a_start_parents_its_workflow_tasks_and_each_task_the_activities_it_scheduled(
    tracer, drive, cache_size
):
    with override_settings(DURABLE={**settings.DURABLE, "STICKY_CACHE_SIZE": cache_size}):
        execution_id = start_workflow("testapp.add_twice", a=1, b=2)
        assert drive(execution_id).status == ExecutionStatus.COMPLETED
    spans = sorted(tracer.exporter.get_finished_spans(), key=lambda span: span.start_time)
    [start] = named(spans, "start_workflow testapp.add_twice")
    tasks = named(spans, "workflow_task testapp.add_twice")
    activities = named(spans, "activity testapp.add")
    assert (len(tasks), len(activities)) == (3, 2)
    assert {span.context.trace_id for span in spans} == {start.context.trace_id}
    assert [parent_of(task) for task in tasks] == [start.context.span_id] * 3
    assert [parent_of(a) for a in activities] == [t.context.span_id for t in tasks[:2]]
    assert attributes(start)["durable.execution_id"] == str(execution_id)
    assert [attributes(task)["durable.outcome"] for task in tasks] == [
        "waiting",
        "waiting",
        "ended",
    ]
    # Sticky: the later tasks resume the cached workflow, whose trace context the cache kept.
    assert [attributes(task)["durable.cache_hit"] for task in tasks] == [
        False,
        cache_size > 0,
        cache_size > 0,
    ]
    assert attributes(tasks[0]) == {
        "durable.execution_id": str(execution_id),
        "durable.workflow_name": "testapp.add_twice",
        "durable.batch_size": 1,
        "durable.cache_hit": False,
        "durable.outcome": "waiting",
        "durable.events": 2,
    }
    assert (
        attributes(activities[0]).items()
        >= {
            "durable.execution_id": str(execution_id),
            "durable.activity_name": "testapp.add",
            "durable.attempt": 1,
            "durable.task_id": ActivityTask.objects.get(command_seq=1).pk,
            "durable.outcome": "completed",
        }.items()
    )
    assert started_data(execution_id)["trace"]["traceparent"].split("-")[1:3] == ids_of(start)


def test_a_start_inside_the_callers_span_continues_its_trace(tracer, drive):
    with tracer.start_as_current_span("request") as request:
        execution_id = start_workflow("testapp.add_twice", a=1, b=2)
    drive(execution_id)
    [start] = named(tracer.exporter.get_finished_spans(), "start_workflow")
    assert parent_of(start) == request.get_span_context().span_id
    assert start.context.trace_id == request.get_span_context().trace_id


async def test_a_start_inside_the_callers_span_continues_its_trace_async(tracer, adrive):
    with tracer.start_as_current_span("request") as request:
        execution_id = await start_workflow("testapp.add_twice", a=1, b=2)
    await adrive(execution_id)
    spans = tracer.exporter.get_finished_spans()
    [start] = named(spans, "start_workflow")
    assert parent_of(start) == request.get_span_context().span_id
    assert {span.context.trace_id for span in spans} == {request.get_span_context().trace_id}


def test_failed_attempts_are_error_spans_under_the_task_that_scheduled_them(tracer, drive):
    execution_id = start_workflow("testapp.fails", message="boom")
    assert drive(execution_id).status == ExecutionStatus.FAILED
    spans = sorted(tracer.exporter.get_finished_spans(), key=lambda span: span.start_time)
    tasks = named(spans, "workflow_task")
    attempts = named(spans, "activity testapp.explode")
    assert [attributes(a)["durable.attempt"] for a in attempts] == [1, 2, 3]
    assert {parent_of(a) for a in attempts} == {tasks[0].context.span_id}
    for attempt in attempts:
        assert attempt.status.status_code == StatusCode.ERROR
        assert attempt.status.description == "ValueError: boom"
        assert attributes(attempt)["durable.outcome"] == "failed"
        assert [event.name for event in attempt.events] == ["exception"]
    assert attributes(tasks[-1])["durable.outcome"] == "ended"


def test_the_trace_context_reaches_the_activity_row(tracer, drive):
    """An activity claimed by another worker, in another process, finds its parent here."""
    execution_id = start_workflow("testapp.add_twice", a=1, b=2)
    drive(execution_id)
    first_task = named(
        sorted(tracer.exporter.get_finished_spans(), key=lambda span: span.start_time),
        "workflow_task",
    )[0]
    options = ActivityTask.objects.get(execution_id=execution_id, command_seq=1).options
    assert options["trace"]["traceparent"].split("-")[1:3] == ids_of(first_task)


def test_a_bulk_start_parents_every_execution_on_its_one_span(tracer, drive):
    ids = start_workflows("testapp.add_twice", [{"a": 1, "b": 2}, {"a": 3, "b": 4}])
    for execution_id in ids:
        drive(execution_id)
    spans = tracer.exporter.get_finished_spans()
    [start] = named(spans, "start_workflows testapp.add_twice")
    assert attributes(start)["durable.batch_size"] == 2
    tasks = named(spans, "workflow_task")
    assert len(tasks) == 6
    assert {parent_of(task) for task in tasks} == {start.context.span_id}
    carried = [started_data(pk)["trace"]["traceparent"].split("-")[1:3] for pk in ids]
    assert carried == [ids_of(start)] * 2


def test_a_signal_has_a_span(tracer):
    execution_id = start_workflow("testapp.collect_signals", count=1)
    send_signal(execution_id, "item", 5)
    [signal] = named(tracer.exporter.get_finished_spans(), "send_signal item")
    assert attributes(signal) == {
        "durable.execution_id": str(execution_id),
        "durable.signal_name": "item",
    }


def test_without_a_trace_to_carry_nothing_is_stored(drive):
    """The API is installed but no tracer provider is set: histories stay as they were."""
    execution_id = start_workflow("testapp.add_twice", a=1, b=2)
    drive(execution_id)
    assert started_data(execution_id) == {"input": {"a": 1, "b": 2}, "timeout": None}
    for options in ActivityTask.objects.values_list("options", flat=True):
        assert "trace" not in options


def test_without_opentelemetry_installed_workflows_run_and_nothing_is_traced(
    tracer, drive, monkeypatch
):
    monkeypatch.setattr(tracing, "trace", None)  # as if the import had failed
    execution_id = start_workflow("testapp.add_twice", a=1, b=2)
    assert drive(execution_id).result == 5
    send_signal(start_workflow("testapp.collect_signals", count=1), "item", 1)
    assert tracer.exporter.get_finished_spans() == ()
    assert "trace" not in started_data(execution_id)


# -- metrics -----------------------------------------------------------------------------


def sample(registry, name: str, **labels) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_metrics_count_workflow_tasks_activity_attempts_and_records(registry, drive):
    drive(start_workflow("testapp.add_twice", a=1, b=2))
    drive(start_workflow("testapp.fails", message="boom"))
    tasks = "durable_workflow_tasks_total"
    assert sample(registry, tasks, workflow="testapp.add_twice", outcome="waiting") == 2
    assert sample(registry, tasks, workflow="testapp.add_twice", outcome="ended") == 1
    assert sample(registry, tasks, workflow="testapp.fails", outcome="ended") == 1
    seconds = "durable_workflow_task_seconds_count"
    assert sample(registry, seconds, workflow="testapp.add_twice") == 3
    attempts = "durable_activity_attempts_total"
    assert sample(registry, attempts, activity="testapp.add", outcome="completed") == 2
    assert sample(registry, attempts, activity="testapp.explode", outcome="retried") == 2
    assert sample(registry, attempts, activity="testapp.explode", outcome="failed") == 1
    ran = "durable_activity_attempt_seconds_count"
    assert sample(registry, ran, activity="testapp.explode") == 3
    assert sample(registry, tasks, workflow="testapp.fails", outcome="waiting") == 1
    # Inline, each workflow task is recorded in a transaction of its own: 3 + 2 of them.
    assert sample(registry, "durable_recorded_total", kind="workflow_task") == 5
    assert sample(registry, "durable_record_seconds_count", kind="workflow_task") == 5


def test_a_parked_execution_counts_as_parked(registry, drive):
    execution_id, _ = start_execution("testapp.not_deployed_here", {})
    assert drive(execution_id).status == ExecutionStatus.BLOCKED
    assert (
        sample(
            registry,
            "durable_workflow_tasks_total",
            workflow="testapp.not_deployed_here",
            outcome="parked",
        )
        == 1
    )


def test_due_work_comes_from_the_database_at_each_scrape(registry, drive):
    metrics().watch_due_work(telemetry.read_due_work)
    execution_id = start_workflow("testapp.add_twice", a=1, b=2)
    assert sample(registry, "durable_due_work", kind="workflow_task") == 1
    lag = registry.get_sample_value("durable_due_work_lag_seconds", {"kind": "workflow_task"})
    assert lag is not None and lag >= 0
    drive(execution_id)
    assert sample(registry, "durable_due_work", kind="workflow_task") == 0
    assert sample(registry, "durable_due_work", kind="activity") == 0


def test_the_setting_sends_metrics_to_prometheus_default_registry(drive):
    name, labels = (
        "durable_workflow_tasks_total",
        {"workflow": "testapp.add_twice", "outcome": "ended"},
    )
    before = prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0
    with override_settings(DURABLE={**settings.DURABLE, "METRICS": "prometheus"}):
        assert isinstance(metrics(), PrometheusMetrics)
        drive(start_workflow("testapp.add_twice", a=1, b=2))
    assert prometheus_client.REGISTRY.get_sample_value(name, labels) == before + 1
    assert isinstance(metrics(), NoMetrics)  # the setting is read again once it changes


def test_metrics_are_off_by_default_and_cost_nothing_to_run_without(drive, monkeypatch):
    monkeypatch.setattr(metrics_module, "prometheus_client", None)  # as if not installed
    assert isinstance(metrics(), NoMetrics)
    assert drive(start_workflow("testapp.add_twice", a=1, b=2)).result == 5


# -- log records -------------------------------------------------------------------------


def test_a_parked_execution_is_logged_with_its_fields(drive, caplog):
    execution_id, _ = start_execution("testapp.not_deployed_here", {})
    with caplog.at_level(logging.ERROR, logger="django_durable"):
        drive(execution_id)
    [record] = [r for r in caplog.records if r.getMessage().startswith("Parking execution")]
    assert record.name == "django_durable.engine.workflow_task"
    assert (record.execution_id, record.workflow_name) == (
        str(execution_id),
        "testapp.not_deployed_here",
    )


def test_a_failed_attempt_is_logged_with_its_fields(drive, caplog):
    execution_id = start_workflow("testapp.fails", message="boom")
    with caplog.at_level(logging.INFO, logger="django_durable"):
        drive(execution_id)
    records = [r for r in caplog.records if r.name == "django_durable.engine.activities"]
    assert [(r.execution_id, r.activity_name, r.attempt) for r in records] == [
        (str(execution_id), "testapp.explode", attempt) for attempt in (1, 2, 3)
    ]


def test_a_failed_attempt_is_logged_with_its_workflow_name(drive, caplog):
    execution_id = start_workflow("testapp.fails", message="boom")
    with caplog.at_level(logging.INFO, logger="django_durable"):
        drive(execution_id)
    records = [r for r in caplog.records if r.name == "django_durable.engine.activities"]
    assert records
    assert {getattr(r, "workflow_name", None) for r in records} == {"testapp.fails"}


def test_what_the_workflow_loop_logs_names_its_execution(drive, caplog, monkeypatch):
    """The runtime knows no execution; the engine names it around the workflow code."""

    async def callback_raises(ctx):
        asyncio.get_running_loop().call_soon(lambda: 1 / 0)
        await asyncio.sleep(0)
        return "done"

    name = "testapp.callback_raises"
    monkeypatch.setitem(register.workflows, name, WorkflowDefinition(name, callback_raises, True))
    execution_id = start_workflow(name)
    with caplog.at_level(logging.ERROR, logger="django_durable"):
        assert drive(execution_id).result == "done"
    [record] = [r for r in caplog.records if r.name == "django_durable.runtime.loop"]
    assert (record.execution_id, record.workflow_name) == (str(execution_id), name)
    assert isinstance(record.exc_info[1], ZeroDivisionError)
