import pytest
from asgiref.sync import SyncToAsync
from django.db import connections

from tests.testapp.durable_activities import CALLS


@pytest.fixture(autouse=True)
def reset_calls():
    CALLS.clear()
    yield


@pytest.fixture(autouse=True)
def close_async_orm_connections():
    """Close the connections the async ORM opened in its thread, so the test DB can be dropped."""
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture
def tracer(monkeypatch):
    """The engine's tracer, on an OpenTelemetry SDK provider whose spans the test reads
    (`tracer.exporter`); the test is skipped where the SDK is not installed."""
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from django_durable.observability import tracing

    provider = sdk.TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    monkeypatch.setattr(tracing, "_tracer", tracer)
    tracer.exporter = exporter
    return tracer
