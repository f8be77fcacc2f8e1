"""Rolling deploys in the store: a worker claims only what its code registered, is not woken
for the rest, and work that no live worker can run shows as waiting (admin, status)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_durable import store
from django_durable.constants import ActivityStatus, EventKind
from django_durable.models import ActivityTask, Worker, WorkflowExecution
from django_durable.runtime.events import Event

pytestmark = pytest.mark.django_db(transaction=True)

OLD_WORKFLOWS = ["testapp.add_twice"]
OLD_ACTIVITIES = ["testapp.add"]
NEW_WORKFLOWS = ["testapp.new_flow"]
NEW_ACTIVITIES = ["testapp.new_step"]
LEASE = timedelta(seconds=3)  # tests.settings sets DURABLE["LEASE_SECONDS"] = 3


def start(name: str) -> object:
    """An execution of `name`, whether or not this process's code knows it."""
    execution_id, _ = store.start_execution(name, {})
    return execution_id


def schedule(execution_id, *names: str) -> None:
    """Record a workflow task of `execution_id` that schedules activities `names`."""
    [claim] = store.claim_workflow_tasks("w0", 1, execution_ids=[execution_id])
    events = [
        Event(
            EventKind.ACTIVITY_SCHEDULED,
            seq,
            name,
            {"args": [], "kwargs": {}, "options": {}, "queue": "default"},
        )
        for seq, name in enumerate(names, start=1)
    ]
    store.record_workflow_task(claim, history_length=1, events=events)


def test_a_worker_claims_only_the_workflows_it_knows():
    old = start("testapp.add_twice")
    new = start("testapp.new_flow")
    assert store.claim_workflow_tasks("w1", 10, workflow_names=[]) == []
    [claim] = store.claim_workflow_tasks("w1", 10, workflow_names=OLD_WORKFLOWS)
    assert claim.execution_id == old
    assert WorkflowExecution.objects.get(pk=new).lease_owner == ""
    [claim] = store.claim_workflow_tasks("w2", 10)  # no filter: today's behaviour
    assert claim.execution_id == new


def test_a_worker_claims_only_the_activities_it_knows():
    execution_id = start("testapp.new_flow")
    schedule(execution_id, "testapp.add", "testapp.new_step")
    [claim] = store.claim_activity_tasks("w1", 10, activity_names=OLD_ACTIVITIES)
    assert claim.activity_name == "testapp.add"
    new_step = ActivityTask.objects.get(activity_name="testapp.new_step")
    assert (new_step.status, new_step.attempt) == (ActivityStatus.QUEUED, 0)
    assert [c.activity_name for c in store.claim_activity_tasks("w2", 10)] == ["testapp.new_step"]


def test_an_expired_lease_is_taken_back_only_by_a_worker_that_knows_the_work():
    execution_id = start("testapp.new_flow")
    schedule(execution_id, "testapp.new_step")
    store.claim_activity_tasks("w1", 10)
    store.claim_workflow_tasks("w1", 10)
    later = timezone.now() + LEASE * 2
    assert store.claim_activity_tasks("w2", 10, now=later, activity_names=OLD_ACTIVITIES) == []
    assert store.claim_workflow_tasks("w2", 10, now=later, workflow_names=OLD_WORKFLOWS) == []
    assert len(store.claim_activity_tasks("w3", 10, now=later, activity_names=["testapp.new_step"]))


def test_next_due_at_ignores_work_the_worker_cannot_run():
    start("testapp.new_flow")
    now = timezone.now()
    assert store.next_due_at(now=now, workflow_names=OLD_WORKFLOWS) is None
    assert store.next_due_at(now=now) is not None
    store.claim_workflow_tasks("w1", 10)  # leased: when the lease expires is a moment too
    assert store.next_due_at(workflow_names=OLD_WORKFLOWS, activities=False) is None
    assert store.next_due_at(activities=False) is not None
    schedule(start("testapp.new_flow"), "testapp.new_step")
    assert store.next_due_at(workflow_names=OLD_WORKFLOWS, activity_names=OLD_ACTIVITIES) is None
    assert store.next_due_at(workflow_names=OLD_WORKFLOWS) is not None


def test_register_worker_records_what_its_code_knows():
    store.register_worker("w1", ["default"], workflows={"b.flow", "a.flow"}, activities=("a.step",))
    worker = Worker.objects.get()
    assert (worker.queues, worker.workflows, worker.activities) == (
        ["default"],
        ["a.flow", "b.flow"],
        ["a.step"],
    )
    store.register_worker("w2", [])  # keeps working for a caller that passes no names
    assert Worker.objects.get(pk="w2").workflows == []


def test_unrunnable_work_lists_what_no_live_worker_knows():
    now = timezone.now()
    store.register_worker("old", [], workflows=OLD_WORKFLOWS, activities=OLD_ACTIVITIES)
    store.register_worker("gone", [], workflows=["testapp.new_flow"], now=now - LEASE * 10)
    store.register_worker("stopped", [], workflows=["testapp.new_flow"])
    store.beat_worker("stopped", stopped=True)
    store.register_worker("other-queue", ["q2"], activities=["testapp.new_step"])
    start("testapp.add_twice")
    first = start("testapp.new_flow")
    start("testapp.new_flow")
    schedule(first, "testapp.new_step", "testapp.add")
    report = store.unrunnable_work(now=timezone.now())
    assert set(report) == {"workflows", "activities"}
    assert report["workflows"].keys() == {"testapp.new_flow"}
    assert report["workflows"]["testapp.new_flow"]["count"] == 1  # the other waits for its activity
    assert report["activities"] == {
        "testapp.new_step": {
            "count": 1,
            "oldest_due_at": ActivityTask.objects.get(activity_name="testapp.new_step").due_at,
            "queues": ["default"],
        }
    }
    store.register_worker(
        "new", [], workflows=["testapp.new_flow"], activities=["testapp.new_step"]
    )
    assert store.unrunnable_work() == {"workflows": {}, "activities": {}}


def test_unrunnable_work_takes_three_queries_and_oldest_is_the_earliest():
    for _ in range(5):
        start("testapp.new_flow")
    now = timezone.now()
    WorkflowExecution.objects.filter(pk=start("testapp.new_flow")).update(
        wake_at=now - timedelta(hours=1)
    )
    with CaptureQueriesContext(connection) as queries:
        report = store.unrunnable_work(now=now)
    assert len(queries) == 3
    assert report["workflows"]["testapp.new_flow"] == {
        "count": 6,
        "oldest_due_at": now - timedelta(hours=1),
    }


# -- the admin shows what waits for a worker -----------------------------------------------


def changelist(admin_client, query: str = "") -> str:
    response = admin_client.get(f"/admin/django_durable/workflowexecution/{query}")
    assert response.status_code == 200
    return response.content.decode()


def test_the_admin_shows_executions_waiting_for_a_worker_that_knows_them(admin_client):
    store.register_worker("old", [], workflows=OLD_WORKFLOWS, activities=OLD_ACTIVITIES)
    known = start("testapp.add_twice")
    unknown = start("testapp.new_flow")
    schedule(known, "testapp.new_step")
    page = changelist(admin_client)
    assert "a worker that knows workflow testapp.new_flow" in page
    assert "a worker that knows activity testapp.new_step" in page
    waiting = changelist(admin_client, "?waiting_for_worker=yes")
    assert str(known) in waiting and str(unknown) in waiting
    store.register_worker(
        "new", [], workflows=["testapp.new_flow"], activities=["testapp.new_step"]
    )
    assert "a worker that knows" not in changelist(admin_client)
    assert str(unknown) not in changelist(admin_client, "?waiting_for_worker=yes")
    detail = admin_client.get(f"/admin/django_durable/workflowexecution/{unknown}/change/")
    assert detail.status_code == 200


def test_the_admin_list_takes_as_many_queries_for_many_executions_as_for_one(admin_client):
    store.register_worker("old", [], workflows=OLD_WORKFLOWS, activities=OLD_ACTIVITIES)
    schedule(start("testapp.new_flow"), "testapp.new_step")
    changelist(admin_client)  # the session and the user are loaded and cached
    with CaptureQueriesContext(connection) as one:
        changelist(admin_client)
    for _ in range(5):
        schedule(start("testapp.new_flow"), "testapp.new_step")
    with CaptureQueriesContext(connection) as six:
        page = changelist(admin_client)
    assert page.count("a worker that knows workflow testapp.new_flow") == 6
    assert len(six) == len(one)
