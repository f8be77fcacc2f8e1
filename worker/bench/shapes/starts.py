"""Shape starts: `start_workflow` from one sync client, one by one, and a bulk start; the
workers, paused meanwhile, then drain them all (zero-activity workflows) and each is
checked."""

from __future__ import annotations

from django.db.models import Max
from django.utils import timezone

from ..checks import check_results
from ..figures import rate
from ..session import Session

WORKFLOW = "bench.empty"


def starts(session: Session) -> dict:
    sizes = session.config.sizes
    single, bulk = sizes["starts"], sizes["bulk_starts"]
    with session.workers() as group:
        session.pause(group)
        since = timezone.now()
        session.progress.note(f"  {single} x start_workflow, one by one")
        one_ids, one_seconds = session.start_one_by_one(WORKFLOW, [{"i": i} for i in range(single)])
        session.progress.note(f"  a bulk start of {bulk}")
        bulk_ids, bulk_seconds = session.start_many(
            WORKFLOW, [{"i": single + i} for i in range(bulk)]
        )
        began = timezone.now()
        group.resume()
        total = single + bulk
        session.wait_ended(group, WORKFLOW, since, total)
    executions = session.executions(WORKFLOW, since)
    rows = list(executions.values("pk", "status", "result", "error"))
    check_results(WORKFLOW, rows, {pk: i for i, pk in enumerate([*one_ids, *bulk_ids])})
    last = executions.aggregate(at=Max("finished_at"))["at"]
    return {
        "one_by_one": single,
        "one_by_one_seconds": round(one_seconds, 3),
        "one_by_one_per_s": rate(single, one_seconds),
        "bulk": bulk,
        "bulk_seconds": round(bulk_seconds, 3),
        "bulk_per_s": rate(bulk, bulk_seconds),
        "drain_workflows_per_s": rate(total, (last - began).total_seconds()),
    }
