"""A real worker traced and scraped: the trace goes from the caller through the worker's
workflow tasks into the activity process, and the worker serves its metrics."""

import json
import socket
import urllib.request

import pytest

from django_durable import start_workflow, wait_workflow
from django_durable.observability import tracing

from .conftest import wait_until

otel_sdk = pytest.importorskip("opentelemetry.sdk.trace")
prometheus_parser = pytest.importorskip("prometheus_client.parser")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spans_by_process(directory) -> dict[int, list[dict]]:
    """The spans each process of the worker wrote (see otel_settings), by process id."""
    found = {}
    for path in directory.glob("spans-*.jsonl"):
        pid = int(path.stem.removeprefix("spans-"))
        found[pid] = [json.loads(line) for line in path.read_text().splitlines() if line]
    return found


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in prometheus_parser.text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_trace_crosses_into_the_worker_and_its_activity_process_and_metrics_are_served(
    start_worker, tmp_path, monkeypatch
):
    provider = otel_sdk.TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("tests"))
    port = free_port()
    worker = start_worker(
        "--procs",
        "1",
        env={
            "DJANGO_SETTINGS_MODULE": "tests.acceptance.otel_settings",
            "DURABLE_TEST_SPANS_DIR": str(tmp_path),
            "DURABLE_TEST_METRICS_PORT": str(port),
        },
    )
    execution_id = start_workflow("testapp.add_twice", a=1, b=2)
    assert wait_workflow(execution_id, timeout=60) == 5
    [start] = exporter.get_finished_spans()
    trace_id = f"0x{start.context.trace_id:032x}"

    def finished() -> dict[int, list[dict]] | None:
        spans = spans_by_process(tmp_path)
        names = [span["name"] for found in spans.values() for span in found]
        ended = names.count("workflow_task testapp.add_twice") == 3
        return spans if ended and names.count("activity testapp.add") == 2 else None

    spans = wait_until(finished, timeout=30, message="the worker's spans were not all written")
    tasks = spans.pop(worker.pid)
    assert {span["name"] for span in tasks} == {"workflow_task testapp.add_twice"}
    assert {span["parent_id"] for span in tasks} == {f"0x{start.context.span_id:016x}"}
    [activities] = spans.values()  # written by the one activity process, not the worker
    assert {span["name"] for span in activities} == {"activity testapp.add"}
    tasks.sort(key=lambda span: span["start_time"])
    activities.sort(key=lambda span: span["start_time"])
    assert [a["parent_id"] for a in activities] == [t["context"]["span_id"] for t in tasks[:2]]
    assert {span["context"]["trace_id"] for span in tasks + activities} == {trace_id}
    assert [a["attributes"]["durable.outcome"] for a in activities] == ["completed"] * 2

    def served(name: str, **labels) -> float:
        return scrape(port).get((name, frozenset(labels.items())), 0.0)

    wait_until(
        lambda: (
            served("durable_workflow_tasks_total", workflow="testapp.add_twice", outcome="ended")
            == 1
        ),
        timeout=10,
        message=f"no metrics were served:\n{worker.output()}",
    )
    assert (
        served("durable_activity_attempts_total", activity="testapp.add", outcome="completed") == 2
    )
    assert served("durable_activity_attempt_seconds_count", activity="testapp.add") == 2
    assert served("durable_recorded_total", kind="activity") == 2
    assert served("durable_claim_seconds_count", kind="workflow_task") >= 1
    assert served("durable_due_lag_seconds_count", kind="activity") == 2
    assert ("durable_worker_queue_depth", frozenset({("kind", "activity")})) in scrape(port)
    due = scrape(port)  # read from the database at the scrape
    assert due[("durable_due_work", frozenset({("kind", "workflow_task")}))] == 0
