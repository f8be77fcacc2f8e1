"""The operator's console renders every page from real executions: the executions list
(badges, counts by status, what each waits for), its filters and search, an execution's
page (input, result, error, timeline, activities, children, non-determinism report), the
engine's tables, and the history that nobody may add to, change or delete."""

import html
import re
import uuid
from datetime import timedelta

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import timezone

from django_durable import (
    WorkflowBlocked,
    register,
    run_workflow,
    send_signal,
    start_workflow,
)
from django_durable.constants import ActivityStatus, EventKind, ExecutionStatus
from django_durable.models import (
    ActivityTask,
    HistoryEvent,
    PendingSignal,
    Worker,
    WorkflowExecution,
)
from tests.integration.test_retry import parked_add_twice

pytestmark = pytest.mark.django_db(transaction=True)

MODELS = ["workflowexecution", "activitytask", "historyevent", "pendingsignal", "worker"]


def changelist(model: str, query: str = "") -> str:
    return reverse(f"admin:django_durable_{model}_changelist") + query


def change(model: str, pk) -> str:
    return reverse(f"admin:django_durable_{model}_change", args=[pk])


def page(client, url: str) -> str:
    """The page at `url`, checked to render, with its HTML entities decoded."""
    response = client.get(url)
    assert response.status_code == 200, url
    return html.unescape(response.content.decode())


def listed(client, query: str = "", model: str = "workflowexecution") -> set[str]:
    """The primary keys of the rows a change list shows."""
    response = client.get(changelist(model, query))
    assert response.status_code == 200, query
    return {str(row.pk) for row in response.context["cl"].result_list}


def status_counts(text: str) -> dict[str, str]:
    found = re.findall(r'data-status="(\w+)">.*?<span class="count">([^<]+)</span>', text, re.S)
    return dict(found)


def create_live_worker() -> Worker:
    """A worker that knows every registered name, beating far enough ahead to stay live for
    the whole test: without one, every running execution waits for a worker."""
    now = timezone.now()
    return Worker.objects.create(
        id="w-live",
        hostname="host-a",
        pid=1,
        workflows=sorted(register.workflows),
        activities=sorted(register.activities),
        started_at=now,
        heartbeat_at=now + timedelta(hours=1),
    )


@pytest.fixture
def live_worker() -> Worker:
    return create_live_worker()


def waiting_for_signal(drive) -> uuid.UUID:
    execution_id = start_workflow("testapp.collect_signals", count=1)
    with pytest.raises(WorkflowBlocked):
        drive(execution_id)
    return execution_id


def failed(drive) -> uuid.UUID:
    execution_id = start_workflow("testapp.raises_directly")
    assert drive(execution_id).status == ExecutionStatus.FAILED
    return execution_id


parked = parked_add_twice  # an add_twice execution parked on non-determinism


# -- the executions list --------------------------------------------------------------------


def test_list_shows_badges_counts_and_what_each_execution_waits_for(
    admin_client, drive, live_worker
):
    run_workflow("testapp.add_twice", a=1, b=2)
    signal = waiting_for_signal(drive)  # the engine records what it waits for
    failed(drive)
    timer, child = (start_workflow("testapp.timer_probe", seconds=1) for _ in range(2))
    until = timezone.now() + timedelta(hours=2)
    WorkflowExecution.objects.filter(pk=timer).update(
        waiting=[{"kind": "timer", "seq": 1, "until": until.isoformat()}], epoch=1
    )
    WorkflowExecution.objects.filter(pk=child).update(
        waiting=[{"kind": "child", "seq": 1, "name": "testapp.add_twice"}], epoch=1
    )

    text = page(admin_client, changelist("workflowexecution"))

    for status in ("completed", "running", "failed"):
        assert f'class="durable-status durable-status-{status}"' in text
    assert status_counts(text) == {
        "running": "3",
        "blocked": "0",
        "completed": "1",
        "failed": "1",
        "canceled": "0",
        "timed_out": "0",
    }
    assert WorkflowExecution.objects.get(pk=signal).waiting == [{"kind": "signal", "name": "item"}]
    assert "signal item" in text
    assert f"timer until {timezone.localtime(until):%Y-%m-%d %H:%M:%S}" in text
    assert "child testapp.add_twice" in text
    assert re.search(r'<p class="paginator">\s*5\s+workflow executions\s*</p>', text)


def test_list_says_a_running_execution_waits_for_a_worker_that_knows_it(admin_client, drive):
    waiting_for_signal(drive)  # and no live worker registered testapp.collect_signals
    text = page(admin_client, changelist("workflowexecution"))
    assert "a worker that knows workflow testapp.collect_signals" in text
    assert "signal item" not in text


def test_list_filters_by_status_workflow_and_date(admin_client, drive, live_worker):
    done = start_workflow("testapp.add_twice", a=1, b=2)
    drive(done)
    waiting = waiting_for_signal(drive)
    broken = failed(drive)
    old = start_workflow("testapp.add_twice", a=5, b=5)
    WorkflowExecution.objects.filter(pk=old).update(created_at=timezone.now() - timedelta(days=30))
    everything = {str(done), str(waiting), str(broken), str(old)}

    assert listed(admin_client) == everything
    assert listed(admin_client, "?status__exact=failed") == {str(broken)}
    assert listed(admin_client, "?status__exact=running") == {str(waiting), str(old)}
    assert listed(admin_client, "?workflow_name=testapp.add_twice") == {str(done), str(old)}
    assert listed(admin_client, "?workflow_name=testapp.add_twice&status__exact=running") == {
        str(old)
    }
    text = page(admin_client, changelist("workflowexecution"))
    # The filters offer the registered workflows, not names read from the table.
    assert '<a href="?workflow_name=yourapp.onboard_user">' in text
    [past_week] = re.findall(r'<a href="(\?created_at__gte=[^"]+)">Past 7 days</a>', text)
    assert listed(admin_client, past_week) == everything - {str(old)}


def test_search_by_execution_id_workflow_id_and_workflow_name_prefix(admin_client):
    order = start_workflow("testapp.add_twice", a=1, b=2, workflow_id="order-17")
    other = start_workflow("testapp.add_twice", a=1, b=2, workflow_id="order-170")
    signals = start_workflow("testapp.collect_signals", count=1)

    assert listed(admin_client, f"?q={order}") == {str(order)}
    assert listed(admin_client, f"?q={str(signals).upper()}") == {str(signals)}
    assert listed(admin_client, "?q=order-17") == {str(order), str(other)}
    assert listed(admin_client, "?q=order-170") == {str(other)}
    assert listed(admin_client, "?q=testapp.coll") == {str(signals)}
    assert listed(admin_client, "?q=testapp.") == {str(order), str(other), str(signals)}
    # A prefix, as an index can find it; not any substring.
    assert listed(admin_client, "?q=collect_signals") == set()
    assert listed(admin_client, f"?q={uuid.uuid4()}") == set()


# -- an execution's page --------------------------------------------------------------------


def test_execution_page_shows_input_result_timeline_and_activities(admin_client):
    run_workflow("testapp.add_twice", a=1, b=2)
    execution = WorkflowExecution.objects.get()
    tasks = list(ActivityTask.objects.filter(execution=execution).order_by("command_seq"))

    text = page(admin_client, change("workflowexecution", execution.pk))

    assert '<pre class="durable-json">{\n  "a": 1,\n  "b": 2\n}</pre>' in text
    assert '<pre class="durable-json">5</pre>' in text
    assert 'class="durable-status durable-status-completed"' in text
    timeline = text.split('id="durable-timeline"', 1)[1].split('id="durable-activities"', 1)[0]
    events = HistoryEvent.objects.filter(execution=execution)
    assert f"Timeline: {events.count()} events" in timeline
    assert re.findall(r'id="event-(\d+)"', timeline) == [
        str(n) for n in range(1, events.count() + 1)
    ]
    scheduled = events.filter(kind=EventKind.ACTIVITY_SCHEDULED).order_by("sequence")
    completed = events.filter(kind=EventKind.ACTIVITY_COMPLETED).order_by("sequence")
    for command, outcome in zip(scheduled, completed, strict=True):
        # The command links to its outcome with the time it took, and the outcome back.
        assert re.search(rf'<a href="#event-{outcome.sequence}">→ [\d.]+ (ms|s)</a>', timeline)
        assert re.search(
            rf'<a href="#event-{command.sequence}">[\d.]+ (ms|s) after #{command.sequence}</a>',
            timeline,
        )
    activities = text.split('id="durable-activities"', 1)[1].split('id="durable-children"')[0]
    for task in tasks:
        assert f'<a href="{change("activitytask", task.pk)}">testapp.add</a>' in activities
    assert len(tasks) == 2


def test_execution_page_of_a_failed_execution_shows_its_error_and_traceback(admin_client, drive):
    execution_id = failed(drive)
    text = page(admin_client, change("workflowexecution", execution_id))
    assert "<strong class=\"durable-error\">KeyError: 'no such thing'</strong>" in text
    assert re.search(r'<pre class="durable-traceback">Traceback.*raise KeyError', text, re.S)
    assert 'id="durable-nondeterminism"' not in text


def test_parent_and_child_pages_link_to_each_other(admin_client):
    run_workflow("testapp.parent", x=2)
    parent = WorkflowExecution.objects.get(workflow_name="testapp.parent")
    child = WorkflowExecution.objects.get(parent=parent)

    parent_page = page(admin_client, change("workflowexecution", parent.pk))
    children = parent_page.split('id="durable-children"', 1)[1]
    assert f'<a href="{change("workflowexecution", child.pk)}">{child.pk}</a>' in children
    assert "testapp.add_twice" in children
    assert f"child {child.pk}" in parent_page  # the timeline's child event links it too

    child_page = page(admin_client, change("workflowexecution", child.pk))
    assert f'<a href="{change("workflowexecution", parent.pk)}">{str(parent.pk)[:8]}</a>' in (
        child_page
    )
    # And the list's parent column.
    text = page(admin_client, changelist("workflowexecution"))
    assert f'<a href="{change("workflowexecution", parent.pk)}">{str(parent.pk)[:8]}</a>' in text


def test_parked_execution_page_reports_what_history_expects_and_what_the_code_issued(
    admin_client, monkeypatch
):
    execution_id = parked(monkeypatch)
    error = WorkflowExecution.objects.get(pk=execution_id).error
    text = page(admin_client, change("workflowexecution", execution_id))
    report = text.split('id="durable-nondeterminism"', 1)[1].split("</div>", 1)[0]
    assert f"<dt>History expects</dt><dd><code>{error['expected']}</code></dd>" in report
    assert f"<dt>The code now issued</dt><dd><code>{error['found']}</code></dd>" in report
    assert "testapp.add" in error["expected"] and "testapp.async_double" in error["found"]
    assert "compatible code (parked: retry or deploy a fix)" in text


def test_timeline_pages_a_long_history_and_pairs_events_across_pages(admin_client):
    execution_id = start_workflow("testapp.many_steps", steps=200)
    started = HistoryEvent.objects.get(execution_id=execution_id)
    assert started.sequence == 1
    base = started.created_at
    events = []
    for step in range(1, 126):  # commands at even sequences, their outcomes right after
        events.append(
            HistoryEvent(
                execution_id=execution_id,
                sequence=2 * step,
                kind=EventKind.ACTIVITY_SCHEDULED,
                command_seq=step,
                name="testapp.add",
            )
        )
        events.append(
            HistoryEvent(
                execution_id=execution_id,
                sequence=2 * step + 1,
                kind=EventKind.ACTIVITY_COMPLETED,
                command_seq=step,
                name="testapp.add",
                data={"result": step},
            )
        )
    HistoryEvent.objects.bulk_create(events)
    for event in HistoryEvent.objects.filter(execution_id=execution_id):
        HistoryEvent.objects.filter(pk=event.pk).update(
            created_at=base + timedelta(seconds=event.sequence)
        )
    url = change("workflowexecution", execution_id)

    first = page(admin_client, url)
    assert "Timeline: 251 events, page 1 of 3" in first
    assert re.findall(r'id="event-(\d+)"', first) == [str(n) for n in range(1, 101)]
    # Sequence 100 (command 50) has its outcome on the next page: found all the same.
    assert '<a href="#event-101">→ 1.0 s</a>' in first

    second = page(admin_client, url + "?timeline=2")
    assert "Timeline: 251 events, page 2 of 3" in second
    assert re.findall(r'id="event-(\d+)"', second) == [str(n) for n in range(101, 201)]
    assert '<a href="#event-100">1.0 s after #100</a>' in second
    assert '<a href="?timeline=1#durable-timeline">1</a>' in second
    assert '<a href="?timeline=3#durable-timeline">3</a>' in second

    last = page(admin_client, url + "?timeline=99")  # clamped to the last page
    assert "page 3 of 3" in last
    assert re.findall(r'id="event-(\d+)"', last) == [str(n) for n in range(201, 252)]
    assert "page 1 of 3" in page(admin_client, url + "?timeline=abc")


# -- the engine's tables --------------------------------------------------------------------


def test_activity_task_list_filters_searches_and_shows_a_task(admin_client, drive):
    run_workflow("testapp.add_twice", a=1, b=2)
    execution_id = start_workflow("testapp.catches_failure")
    drive(execution_id)
    failing = ActivityTask.objects.get(execution_id=execution_id)
    adds = {
        str(pk)
        for pk in ActivityTask.objects.filter(activity_name="testapp.add").values_list(
            "pk", flat=True
        )
    }

    text = page(admin_client, changelist("activitytask"))
    assert "testapp.add" in text and "testapp.explode" in text
    assert "ValueError: boom" in text
    assert 'class="durable-status durable-status-failed"' in text
    assert listed(admin_client, "?status__exact=failed", "activitytask") == {str(failing.pk)}
    assert listed(admin_client, "?activity_name=testapp.add", "activitytask") == adds
    assert listed(admin_client, f"?q={execution_id}", "activitytask") == {str(failing.pk)}
    assert listed(admin_client, "?q=testapp.ad", "activitytask") == adds

    task = page(admin_client, change("activitytask", failing.pk))
    assert '<pre class="durable-json">[\n  "boom"\n]</pre>' in task
    assert f'<a href="{change("workflowexecution", execution_id)}">' in task
    assert re.search(r'"type": "[\w.]*ValueError"', task)


def test_worker_list_shows_alive_stale_and_stopped_workers_and_what_they_hold(admin_client):
    now = timezone.now()
    common = {"hostname": "host-a", "pid": 7, "started_at": now - timedelta(hours=1)}
    Worker.objects.create(id="w-alive", heartbeat_at=now, queues=["mail"], **common)
    Worker.objects.create(id="w-stale", heartbeat_at=now - timedelta(minutes=5), **common)
    Worker.objects.create(
        id="w-stopped", heartbeat_at=now, stopped_at=now, workflows=["a.b"], **common
    )
    execution_id = start_workflow("testapp.add_twice", a=1, b=2)
    ActivityTask.objects.create(
        execution_id=execution_id,
        command_seq=1,
        activity_name="testapp.add",
        status=ActivityStatus.RUNNING,
        lease_owner="w-alive",
        lease_until=now + timedelta(minutes=1),
        due_at=now,
    )

    text = page(admin_client, changelist("worker"))
    for worker, state in [("w-alive", "alive"), ("w-stale", "stale"), ("w-stopped", "stopped")]:
        row = text.split(f">{worker}</a>", 1)[1].split("</tr>", 1)[0]
        assert f'class="durable-status durable-status-{state}"' in row, worker
    assert "1 activity attempt(s), 0 workflow task(s)" in text
    assert "mail" in text and "every queue" in text

    alive = page(admin_client, change("worker", "w-alive"))
    assert 'class="durable-status durable-status-alive"' in alive
    assert "1 activity attempt(s), 0 workflow task(s)" in alive
    stopped = page(admin_client, change("worker", "w-stopped"))
    assert 'class="durable-status durable-status-stopped"' in stopped
    assert '"a.b"' in stopped


def test_history_event_list_and_page(admin_client):
    run_workflow("testapp.add_twice", a=1, b=2)
    execution = WorkflowExecution.objects.get()
    completed = HistoryEvent.objects.get(kind=EventKind.WORKFLOW_COMPLETED)

    text = page(admin_client, changelist("historyevent"))
    assert "workflow completed" in text and "activity scheduled" in text
    assert listed(admin_client, "?kind__exact=workflow_completed", "historyevent") == {
        str(completed.pk)
    }
    assert listed(admin_client, f"?q={execution.pk}", "historyevent") == {
        str(pk) for pk in execution.history.values_list("pk", flat=True)
    }

    event = page(admin_client, change("historyevent", completed.pk))
    assert '"result": 5' in event
    assert f'<a href="{change("workflowexecution", execution.pk)}">' in event


def test_pending_signals_list_and_page(admin_client, drive):
    execution_id = waiting_for_signal(drive)
    send_signal(execution_id, "item", {"sku": "A-1"})
    signal = PendingSignal.objects.get()

    text = page(admin_client, changelist("pendingsignal"))
    assert re.search(
        rf'class="field-name"><a href="{change("pendingsignal", signal.pk)}">item</a>', text
    )
    assert f'<a href="{change("workflowexecution", execution_id)}">' in text
    detail = page(admin_client, change("pendingsignal", signal.pk))
    assert '"sku": "A-1"' in detail


# -- nobody edits what the engine owns ------------------------------------------------------


def _one_of_each(drive) -> dict[str, str]:
    execution_id = waiting_for_signal(drive)
    send_signal(execution_id, "item", 1)
    run_workflow("testapp.add_twice", a=1, b=2)
    now = timezone.now()
    Worker.objects.create(id="w1", hostname="h", pid=1, started_at=now, heartbeat_at=now)
    return {
        "workflowexecution": str(execution_id),
        "activitytask": str(ActivityTask.objects.first().pk),
        "historyevent": str(HistoryEvent.objects.filter(execution_id=execution_id).first().pk),
        "pendingsignal": str(PendingSignal.objects.get().pk),
        "worker": "w1",
    }


def _snapshot(model: str) -> list:
    return sorted(map(str, apps.get_model("django_durable", model).objects.values_list(flat=False)))


@pytest.mark.parametrize("model", MODELS)
def test_superusers_cannot_add_change_or_delete_rows_the_engine_owns(admin_client, drive, model):
    pks = _one_of_each(drive)
    pk = pks[model]
    rows = {name: _snapshot(name) for name in MODELS}

    assert admin_client.get(reverse(f"admin:django_durable_{model}_add")).status_code == 403
    assert admin_client.post(reverse(f"admin:django_durable_{model}_add"), {}).status_code == 403
    delete = reverse(f"admin:django_durable_{model}_delete", args=[pk])
    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    response = admin_client.post(change(model, pk), {"name": "edited", "status": "completed"})
    assert response.status_code == 403

    listing = admin_client.get(changelist(model))
    assert "delete_selected" not in listing.context["cl"].model_admin.get_actions(
        listing.wsgi_request
    )
    assert 'href="' + reverse(f"admin:django_durable_{model}_add") not in listing.content.decode()
    response = admin_client.post(
        changelist(model), {"action": "delete_selected", "_selected_action": [pk], "post": "yes"}
    )
    assert response.status_code in (200, 302)
    assert {name: _snapshot(name) for name in MODELS} == rows
