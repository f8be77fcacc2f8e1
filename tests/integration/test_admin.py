"""The admin shows executions with their history, activity tasks and events."""

import pytest

from django_durable import run_workflow
from django_durable.models import ActivityTask, HistoryEvent, WorkflowExecution

pytestmark = pytest.mark.django_db(transaction=True)


def test_admin_pages_render(admin_client):
    run_workflow("yourapp.onboard_user", user_id=3)
    execution = WorkflowExecution.objects.get()
    pages = {
        "/admin/django_durable/workflowexecution/": "yourapp.onboard_user",
        f"/admin/django_durable/workflowexecution/{execution.pk}/change/": "timer_started",
        "/admin/django_durable/activitytask/": "yourapp.compute_score",
        f"/admin/django_durable/activitytask/{ActivityTask.objects.first().pk}/change/": "",
        "/admin/django_durable/historyevent/": "workflow_completed",
        f"/admin/django_durable/historyevent/{HistoryEvent.objects.first().pk}/change/": "",
        "/admin/django_durable/pendingsignal/": "",
    }
    for url, text in pages.items():
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert text in response.content.decode(), url


def test_admin_action_cancels_live_executions(admin_client):
    from django_durable import start_workflow

    live = start_workflow("testapp.collect_signals", count=1)
    run_workflow("testapp.add_twice", a=1, b=1)
    ended = WorkflowExecution.objects.get(workflow_name="testapp.add_twice")
    response = admin_client.post(
        "/admin/django_durable/workflowexecution/",
        {"action": "cancel_executions", "_selected_action": [str(live), str(ended.pk)]},
        follow=True,
    )
    assert "Asked 1 execution(s) to cancel; 1 had ended." in response.content.decode()
    assert WorkflowExecution.objects.get(pk=live).cancel_requested
    assert not WorkflowExecution.objects.get(pk=ended.pk).cancel_requested
