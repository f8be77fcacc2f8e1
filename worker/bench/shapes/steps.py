"""Shape steps: one workflow running N activities in sequence; does a step cost the same at
the end of the run as at its start (G10: sticky, O(N) in total)?"""

from __future__ import annotations

import itertools
import statistics

from django_durable.models import ActivityTask

from ..batch import batch_figures, run_batch
from ..session import Session

WINDOW = 100  # steps compared at each end


def steps(session: Session) -> dict:
    n = session.config.sizes["steps"]
    with session.workers() as group:
        batch = run_batch(session, group, "bench.steps", [{"n": n}], [n], activities_each=n)
    figures = batch_figures(batch, "drain")
    # A step's time: from the previous activity's completion (the run's start for the first)
    # to its own, as stamped on the activity tasks.
    finished = list(
        ActivityTask.objects.filter(execution_id=batch.ids[0])
        .order_by("command_seq")
        .values_list("finished_at", flat=True)
    )
    marks = [batch.began, *finished]
    per_step = [(b - a).total_seconds() * 1000 for a, b in itertools.pairwise(marks)]
    width = min(WINDOW, len(per_step) // 2)
    first = statistics.mean(per_step[:width])
    last = statistics.mean(per_step[-width:])
    figures.update(
        steps=n,
        step_ms_mean=round(statistics.mean(per_step), 2),
        compared_steps=width,
        first_steps_ms=round(first, 2),
        last_steps_ms=round(last, 2),
        last_over_first=round(last / first, 2) if first > 0 else None,
    )
    return figures
