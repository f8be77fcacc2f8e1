"""`manage.py durable_status`: the on-call report (executions, workers, due work and its lag,
unrunnable and parked work), its JSON document, and the exit status a probe relies on."""

import io
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_durable import store
from django_durable.constants import ActivityStatus, EventKind, ExecutionStatus
from django_durable.models import ActivityTask, Worker, WorkflowExecution
from django_durable.runtime.events import Event
from django_durable.store.status import status_report

pytestmark = pytest.mark.django_db(transaction=True)

REPO_ROOT = Path(__file__).resolve().parents[2]
LEASE = timedelta(seconds=3)  # tests.settings sets DURABLE["LEASE_SECONDS"] = 3
NO_ALERT = ("--max-lag", "100000")


def status(*args: str) -> str:
    out = io.StringIO()
    call_command("durable_status", *args, stdout=out)
    return out.getvalue()


def status_json(*args: str) -> dict:
    return json.loads(status("--json", *NO_ALERT, *args))


def start(name: str, status: str = ExecutionStatus.RUNNING, **changes) -> object:
    """An execution of `name` (known to this code or not) put in `status`."""
    execution_id, _ = store.start_execution(name, {})
    WorkflowExecution.objects.filter(pk=execution_id).update(status=status, **changes)
    return execution_id


def schedule(execution_id, name: str, **changes) -> ActivityTask:
    """Record a workflow task of `execution_id` scheduling the activity `name`."""
    WorkflowExecution.objects.filter(pk=execution_id).update(wake_at=timezone.now())
    [claim] = store.claim_workflow_tasks("w0", 1, execution_ids=[execution_id])
    scheduled = Event(
        EventKind.ACTIVITY_SCHEDULED,
        1,
        name,
        {"args": [], "kwargs": {}, "options": {}, "queue": "default"},
    )
    store.record_workflow_task(claim, history_length=1, events=[scheduled])
    ActivityTask.objects.filter(execution_id=execution_id).update(**changes)
    return ActivityTask.objects.get(execution_id=execution_id)


def park(name: str, error_type: str, message: str) -> object:
    error = {"type": error_type, "message": message, "traceback": "Traceback: SECRET FRAMES"}
    return start(name, ExecutionStatus.BLOCKED, wake_at=None, error=error)


def lag_line(kind: str, text: str) -> float:
    found = re.search(rf"^  {kind}: \d+ due; oldest .*, lag ([\d.]+) s\.$", text, re.MULTILINE)
    assert found, text
    return float(found.group(1))


# -- executions by status and workflow -------------------------------------------------------


def test_the_table_counts_executions_by_workflow_and_status():
    for _ in range(3):
        start("shop.order", wake_at=None)
    start("shop.order", ExecutionStatus.COMPLETED)
    start("shop.order", ExecutionStatus.FAILED)
    start("shop.ship", ExecutionStatus.COMPLETED)
    start("shop.ship", ExecutionStatus.TIMED_OUT)
    park("shop.ship", "x.Error", "no")
    text = status(*NO_ALERT)
    assert (
        "Executions\n"
        "  workflow    running  blocked  completed  failed  canceled  timed_out\n"
        "  shop.order        3        0          1       1         0          0\n"
        "  shop.ship         0        1          1       0         0          1\n"
        "  total             3        1          2       1         0          1\n"
    ) in text
    document = status_json()
    assert document["executions"]["shop.ship"] == {
        "running": 0,
        "blocked": 1,
        "completed": 1,
        "failed": 0,
        "canceled": 0,
        "timed_out": 1,
    }
    assert document["executions_total"]["running"] == 3


def test_an_empty_database_reports_nothing_due_and_exits_0():
    text = status()
    assert "Executions: none." in text
    assert "Workers: 0 alive, 0 stale, 0 stopped." in text
    assert "  workflow tasks: none due.\n  activities: none due." in text
    assert "Work no live worker can run: none." in text
    assert text.rstrip().endswith("Parked executions: none.")
    assert status_json()["lag"] == {
        "oldest_seconds": None,
        "max_seconds": 100000.0,
        "exceeded": False,
    }


# -- workers ---------------------------------------------------------------------------------


def test_workers_are_alive_stale_or_stopped_as_live_workers_reckons():
    now = timezone.now()
    store.register_worker("w-alive", ["default"])
    store.register_worker("w-stale", [], now=now - LEASE * 4)  # silent past LIVE_LEASES leases
    store.register_worker("w-nearly", [], now=now - LEASE * 2)  # still within them
    store.register_worker("w-stopped", [])
    store.beat_worker("w-stopped", stopped=True)
    workers = status_json()["workers"]
    assert (workers["alive"], workers["stale"], workers["stopped"]) == (2, 1, 1)
    states = {worker["id"]: worker["state"] for worker in workers["listed"]}
    assert states == {
        "w-alive": "alive",
        "w-nearly": "alive",
        "w-stale": "stale",
        "w-stopped": "stopped",
    }
    alive = {worker.pk for worker in store.live_workers()}
    assert alive == {name for name, state in states.items() if state == "alive"}
    assert [worker["id"] for worker in workers["listed"]][:2] == ["w-alive", "w-nearly"]
    listed = workers["listed"][0]
    worker = Worker.objects.get(pk="w-alive")
    assert (listed["hostname"], listed["pid"], listed["queues"]) == (
        worker.hostname,
        worker.pid,
        ["default"],
    )
    text = status(*NO_ALERT)
    assert "Workers: 2 alive, 1 stale, 1 stopped." in text
    assert re.search(
        rf"^  alive    w-alive +{re.escape(worker.hostname)} +{worker.pid}  ", text, re.M
    )
    assert re.search(r"^  stale    w-stale .* \(1[12]\.\d s ago\)$", text, re.M)
    assert re.search(r"^  stopped  w-stopped ", text, re.M)


def test_the_workers_listed_are_limited_alive_first():
    now = timezone.now()
    store.register_worker("w-stopped", [])
    store.beat_worker("w-stopped", stopped=True)  # beat last, but not alive
    for n in range(3):
        store.register_worker(f"w-{n}", [], now=now - timedelta(seconds=n))
    text = status("--limit", "2", *NO_ALERT)
    assert [row.split()[1] for row in text.splitlines() if row.startswith("  alive ")] == [
        "w-0",
        "w-1",
    ]
    assert "w-stopped" not in text
    assert "  ... and 2 more." in text


# -- due work and its lag --------------------------------------------------------------------


def test_the_oldest_due_work_of_each_kind_and_its_lag():
    now = timezone.now()
    # Workflow tasks: one due 100 s ago and never claimed; one due 500 s ago whose lease ran
    # out 50 s ago (claimable for 50 s only); one due long ago whose lease still holds.
    waiting = start("shop.order", wake_at=now - timedelta(seconds=100))
    start(
        "shop.order", wake_at=now - timedelta(seconds=500), lease_until=now - timedelta(seconds=50)
    )
    start("shop.order", wake_at=now - timedelta(hours=1), lease_until=now + timedelta(hours=1))
    start("shop.later", wake_at=now + timedelta(seconds=60))
    # Activities: one queued 200 s ago, one whose attempt's lease ran out 30 s ago, one
    # running under a live lease, one queued for later.
    queued = schedule(
        start("shop.order", wake_at=None), "shop.charge", due_at=now - timedelta(seconds=200)
    )
    schedule(
        start("shop.order", wake_at=None),
        "shop.pick",
        status=ActivityStatus.RUNNING,
        due_at=now - timedelta(hours=2),
        lease_until=now - timedelta(seconds=30),
    )
    schedule(
        start("shop.order", wake_at=None),
        "shop.pack",
        status=ActivityStatus.RUNNING,
        due_at=now - timedelta(hours=3),
        lease_until=now + timedelta(hours=1),
    )
    schedule(start("shop.order", wake_at=None), "shop.ship", due_at=now + timedelta(hours=1))
    WorkflowExecution.objects.filter(wake_at__gte=now - timedelta(seconds=10)).exclude(
        workflow_name="shop.later"
    ).update(wake_at=None)  # `schedule` left them due: they wait for their activity now

    due = status_report(now=now)["due"]
    assert due["workflow_tasks"] == {
        "count": 2,
        "count_capped": False,
        "oldest": {
            "name": "shop.order",
            "execution_id": waiting,
            "due_at": now - timedelta(seconds=100),
            "lag_seconds": 100.0,
        },
    }
    assert due["activities"] == {
        "count": 2,
        "count_capped": False,
        "oldest": {
            "name": "shop.charge",
            "execution_id": queued.execution_id,
            "due_at": now - timedelta(seconds=200),
            "lag_seconds": 200.0,
        },
    }
    text = status(*NO_ALERT)
    assert 100 <= lag_line("workflow tasks", text) < 160
    assert f"oldest shop.order (execution {waiting}), lag" in text
    assert 200 <= lag_line("activities", text) < 260
    assert "  activities: 2 due; oldest shop.charge " in text
    document = status_json()
    assert document["due"]["activities"]["oldest"]["execution_id"] == str(queued.execution_id)
    assert 200 <= document["lag"]["oldest_seconds"] < 260


def test_an_expired_lease_counts_from_when_it_ran_out():
    now = timezone.now()
    start("shop.order", wake_at=now - timedelta(hours=1), lease_until=now - timedelta(seconds=20))
    schedule(
        start("shop.order", wake_at=None),
        "shop.pick",
        status=ActivityStatus.RUNNING,
        due_at=now - timedelta(hours=2),
        lease_until=now - timedelta(seconds=40),
    )
    WorkflowExecution.objects.filter(wake_at__gte=now - timedelta(seconds=10)).update(wake_at=None)
    due = status_report(now=now)["due"]
    assert due["workflow_tasks"]["oldest"]["lag_seconds"] == 20.0
    assert due["activities"]["oldest"]["lag_seconds"] == 40.0
    assert due["activities"]["oldest"]["name"] == "shop.pick"


def test_work_no_live_worker_can_run_is_shown():
    now = timezone.now()
    store.register_worker("old", [], workflows=["shop.order"], activities=["shop.charge"])
    start("shop.order", wake_at=now - timedelta(seconds=5))
    start("shop.new", wake_at=now - timedelta(seconds=300))
    schedule(start("shop.order", wake_at=None), "shop.refund", due_at=now - timedelta(seconds=30))
    text = status(*NO_ALERT)
    assert "Work no live worker can run (its code is on no live worker)\n" in text
    assert re.search(r"^  workflow shop\.new: 1 due, the oldest for 5 min\.$", text, re.M)
    assert re.search(
        r"^  activity shop\.refund \(queue default\): 1 due, the oldest for \d+\.\d s\.$",
        text,
        re.M,
    )
    assert "workflow shop.order:" not in text
    unrunnable = status_json()["unrunnable"]
    assert set(unrunnable["workflows"]) == {"shop.new"}
    assert unrunnable["activities"]["shop.refund"]["queues"] == ["default"]


# -- parked executions -----------------------------------------------------------------------


def test_parked_executions_show_their_reason_first_line_at_most_limit():
    first = park("shop.order", "django_durable.NonDeterminismError", "Expected A at 3\nbut B")
    park("shop.order", "django_durable.UnknownWorkflow", "No workflow 'shop.order' here.")
    park("shop.ship", "builtins.ValueError", "\n  third\nreason")
    text = status("--limit", "2", *NO_ALERT)
    assert "Parked executions: 3\n" in text
    assert re.search(
        rf"^  {first}  shop\.order  \S+ \S+ UTC  django_durable\.NonDeterminismError: "
        r"Expected A at 3$",
        text,
        re.M,
    )
    assert "django_durable.UnknownWorkflow: No workflow 'shop.order' here." in text
    assert "ValueError" not in text  # the third is not listed ...
    assert text.rstrip().endswith("  ... and 1 more.")  # ... but counted
    assert "SECRET" not in text and "but B" not in text
    parked = status_json("--limit", "5")["parked"]
    assert parked["count"] == 3
    assert [row["message"] for row in parked["listed"]] == [
        "Expected A at 3",
        "No workflow 'shop.order' here.",
        "third",
    ]
    assert parked["listed"][0] == {
        "execution_id": str(first),
        "workflow_name": "shop.order",
        "created_at": parked["listed"][0]["created_at"],
        "error_type": "django_durable.NonDeterminismError",
        "message": "Expected A at 3",
    }


# -- the JSON document -----------------------------------------------------------------------


def test_the_json_document_has_the_documented_keys():
    now = timezone.now()
    store.register_worker("w1", [])
    start("shop.order", wake_at=now - timedelta(seconds=5))
    schedule(start("shop.order", wake_at=None), "shop.charge")
    park("shop.order", "x.Error", "why")
    document = status_json()
    assert set(document) == {
        "schema",
        "now",
        "executions",
        "executions_total",
        "workers",
        "due",
        "lag",
        "unrunnable",
        "parked",
    }
    assert document["schema"] == 1
    assert set(document["workers"]) == {"alive", "stale", "stopped", "listed"}
    assert set(document["workers"]["listed"][0]) == {
        "id",
        "state",
        "hostname",
        "pid",
        "queues",
        "started_at",
        "heartbeat_at",
        "stopped_at",
    }
    assert set(document["due"]) == {"workflow_tasks", "activities"}
    for summary in document["due"].values():
        assert set(summary) == {"count", "count_capped", "oldest"}
        assert set(summary["oldest"]) == {"name", "execution_id", "due_at", "lag_seconds"}
    assert set(document["lag"]) == {"oldest_seconds", "max_seconds", "exceeded"}
    assert set(document["unrunnable"]) == {"workflows", "activities"}
    assert set(document["parked"]) == {"count", "listed"}
    assert set(document["parked"]["listed"][0]) == {
        "execution_id",
        "workflow_name",
        "created_at",
        "error_type",
        "message",
    }
    assert document["now"].endswith("+00:00")


def test_the_report_takes_the_same_queries_whatever_the_amount():
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            status_report()
        return len(captured)

    empty = queries()
    now = timezone.now()
    for n in range(20):
        store.register_worker(f"w{n}", [])
        start(f"shop.flow{n % 3}", wake_at=now - timedelta(seconds=n))
        park("shop.order", "x.Error", "why")
    assert queries() == empty


# -- the exit status -------------------------------------------------------------------------


def test_lag_over_max_lag_prints_the_report_then_fails():
    start("shop.order", wake_at=timezone.now() - timedelta(seconds=400))
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("durable_status", "--max-lag", "60", stdout=out)
    assert "Due work no worker has claimed" in out.getvalue()
    assert re.fullmatch(
        r"The oldest due work \(workflow task shop\.order\) has waited 4\d\d\.\d s, "
        r"over --max-lag 60 s\.",
        str(caught.value),
    )
    assert "Due work" in status("--max-lag", "1000")  # under it: no error


def test_exit_status_from_the_shell():
    start("shop.order", wake_at=timezone.now() - timedelta(seconds=400))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DURABLE_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "django", "durable_status", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    late = run("--json", "--max-lag", "300")
    assert late.returncode == 1
    assert json.loads(late.stdout)["lag"]["exceeded"] is True
    assert re.fullmatch(
        r"CommandError: The oldest due work \(workflow task shop\.order\) has waited "
        r"4\d\d\.\d s, over --max-lag 300 s\.\n",
        late.stderr,
    )
    fine = run("--max-lag", "3600")
    assert (fine.returncode, fine.stderr) == (0, "")
    assert "  workflow tasks: 1 due; oldest shop.order" in fine.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-lag", "-1"], "--max-lag must not be negative."),
        (["--max-lag", "nan"], "--max-lag must be a finite number of seconds, not nan."),
        (["--max-lag", "inf"], "--max-lag must be a finite number of seconds, not inf."),
        (["--limit", "0"], "--limit must be from 1 to 1000, not 0."),
    ],
)
def test_bad_options_are_refused_before_any_report(args, message):
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("durable_status", *args, stdout=out)
    assert str(caught.value) == message
    assert out.getvalue() == ""


def test_a_database_it_cannot_read_is_one_line_not_a_traceback(monkeypatch):
    """A probe run while the database is down (or before migrate) must say why in one line."""
    from django.db import OperationalError

    from django_durable.management.commands import durable_status

    def down(**_):
        raise OperationalError('connection to server at "db" failed: Connection refused\nIs it up?')

    monkeypatch.setattr(durable_status, "status_report", down)
    with pytest.raises(CommandError) as refused:
        call_command("durable_status")
    message = str(refused.value)
    assert message == (
        'Cannot read the engine\'s tables (connection to server at "db" failed: Connection '
        "refused): is the database up and migrated (manage.py migrate)?"
    )
