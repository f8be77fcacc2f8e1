"""Observability: what the engine tells the outside about its work (docs/observability.md).

`logs`: the fields every record about an execution carries, and the `ExecutionFields`
filter that fills them in for formatters. `tracing`: OpenTelemetry spans and the trace
context carried from a start to its workflow tasks and activities (optional: the `[otel]`
extra). `metrics`: counters and histograms through a small hook, Prometheus's with the
`[prometheus]` extra. A bottom layer: it imports nothing of the engine, so every layer may
use it; and nothing here is needed to run workflows.
"""
