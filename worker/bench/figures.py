"""Small arithmetic shared by the shapes: percentiles and rounding of samples."""

from __future__ import annotations

import math
import statistics


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` 0.5 is the median's upper neighbour)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def distribution_ms(seconds: list[float]) -> dict[str, float]:
    """p50, p95, p99 and max of `seconds`, in milliseconds."""
    if not seconds:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ms = [value * 1000 for value in seconds]
    return {
        "p50": round(statistics.median(ms), 1),
        "p95": round(percentile(ms, 0.95), 1),
        "p99": round(percentile(ms, 0.99), 1),
        "max": round(max(ms), 1),
    }


def rate(count: float, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None
