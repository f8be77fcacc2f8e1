"""Shape sleepers: N workflows asleep on durable timers at once, all due at the same moment.

The workers' memory is read once every sleeper has recorded its timer; lateness is each
execution's `finished_at` (it returns as soon as it wakes) minus its timer's `fire_at`, as
recorded in its `timer_started` event."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from django.core.management.base import CommandError
from django.db.models import Max
from django.utils import timezone

from django_durable.constants import EventKind
from django_durable.models import HistoryEvent

from ..checks import check_results
from ..figures import distribution_ms, rate
from ..session import Session
from ..waiting import wait_for

WORKFLOW = "bench.sleeper"


def default_sleep_seconds(count: int) -> float:
    """Time to put `count` workflows to sleep, generously: 10 s plus 80 per second."""
    return 10.0 + count / 80


def sleepers(session: Session) -> dict:
    config = session.config
    count = config.sizes["sleepers"]
    sleep_seconds = config.sleep_seconds or default_sleep_seconds(count)
    with session.workers() as group:
        session.pause(group)
        since = timezone.now()
        wake_at = time.time() + sleep_seconds
        ids, start_seconds = session.start_many(WORKFLOW, [{"wake_at": wake_at}] * count)
        group.resume()
        timers = HistoryEvent.objects.filter(
            execution__workflow_name=WORKFLOW,
            execution__created_at__gte=since,
            kind=EventKind.TIMER_STARTED,
        )
        wait_for(
            timers.count,
            count,
            f"{WORKFLOW} asleep",
            check=group.check_alive,
            progress=session.progress,
            stall_seconds=config.stall,
        )
        asleep = time.time()
        usage = group.usage()
        if asleep >= wake_at:
            raise CommandError(
                f"Sleepers: the last of {count} fell asleep {asleep - wake_at:.1f} s after "
                f"their wake time; raise --sleep-seconds (was {sleep_seconds:g})."
            )
        session.progress.note(f"  all {count} asleep; they wake in {wake_at - asleep:.1f} s")
        session.wait_ended(group, WORKFLOW, since, count)
    executions = session.executions(WORKFLOW, since)
    rows = list(executions.values("pk", "status", "result", "error", "finished_at"))
    check_results(WORKFLOW, rows, dict.fromkeys(ids, wake_at))
    fire_at = dict(timers.values_list("execution_id", "data"))
    lateness = [row["finished_at"].timestamp() - fire_at[row["pk"]]["fire_at"] for row in rows]
    last = executions.aggregate(at=Max("finished_at"))["at"]
    return {
        "sleepers": count,
        "sleep_seconds": round(sleep_seconds, 1),
        "bulk_start_seconds": round(start_seconds, 3),
        "asleep_after_seconds": round(asleep - since.timestamp(), 3),
        "worker_rss_mb": round(usage.worker_rss_mb, 1),
        "activity_processes_rss_mb": round(usage.children_rss_mb, 1),
        "late_ms": distribution_ms(lateness),
        "all_awake_after_seconds": round(last.timestamp() - wake_at, 3),
        "wakes_per_s": rate(count, max(last.timestamp() - wake_at, 1e-9)),
        "woke_at": datetime.fromtimestamp(wake_at, tz=UTC).isoformat(),
    }
