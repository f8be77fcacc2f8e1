"""Settings of a worker that is traced and serves its metrics (tests/acceptance/
test_observability.py): the test settings, with every process (the worker and each activity
process, which imports these settings in `django.setup()`) writing its finished spans to a
file of its own in `DURABLE_TEST_SPANS_DIR`, one JSON document a line."""

import os

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from tests.settings import *  # noqa: F403
from tests.settings import DURABLE

DURABLE = {
    **DURABLE,
    "METRICS": {"BACKEND": "prometheus", "PORT": int(os.environ["DURABLE_TEST_METRICS_PORT"])},
}


def _spans_to_file(directory: str) -> None:
    path = os.path.join(directory, f"spans-{os.getpid()}.jsonl")
    out = open(path, "a", buffering=1)  # open for the life of the process
    exporter = ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


_spans_to_file(os.environ["DURABLE_TEST_SPANS_DIR"])
