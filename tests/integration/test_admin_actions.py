"""The console's actions (start, signal, cancel, retry or resume): each one is done by a user
with only the view permission and its own, shows its button only to them, answers 403 to
everybody else, checks what is typed before anything is stored, and leaves a LogEntry."""

import html
import re
import uuid

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from django_durable import run_workflow, start_workflow
from django_durable.constants import EventKind, ExecutionStatus
from django_durable.models import HistoryEvent, PendingSignal, WorkflowExecution
from tests.integration.test_admin import failed, parked, waiting_for_signal

pytestmark = pytest.mark.django_db(transaction=True)

ACTIONS = {  # the permission each action needs
    "start": "start_execution",
    "signal": "signal_execution",
    "cancel": "cancel_execution",
    "retry": "retry_execution",
}
LIST = reverse("admin:django_durable_workflowexecution_changelist")
START = reverse("admin:django_durable_workflowexecution_start")


def url(action: str, execution_id) -> str:
    return reverse(f"admin:django_durable_workflowexecution_{action}", args=[execution_id])


def execution_page(execution_id) -> str:
    return reverse("admin:django_durable_workflowexecution_change", args=[execution_id])


def text(response) -> str:
    return html.unescape(response.content.decode())


def messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def has_button(client, page: str, button: str) -> bool:
    response = client.get(page)
    assert response.status_code == 200
    return f'id="{button}"' in response.content.decode()


@pytest.fixture
def operator(client):
    """Log `client` in as a staff user who may view executions and do `actions` only."""

    def login(*actions: str) -> User:
        user = User.objects.create_user("operator", password="x", is_staff=True)
        codenames = ["view_workflowexecution", *(ACTIONS[action] for action in actions)]
        user.user_permissions.set(
            Permission.objects.filter(
                content_type=ContentType.objects.get(
                    app_label="django_durable", model="workflowexecution"
                ),
                codename__in=codenames,
            )
        )
        assert len(codenames) == user.user_permissions.count()
        client.force_login(user)
        return user

    return login


def all_but(action: str) -> list[str]:
    return [other for other in ACTIONS if other != action]


def log_entry(user: User, execution_id, flag: int = CHANGE) -> LogEntry:
    return LogEntry.objects.get(user=user, object_id=str(execution_id), action_flag=flag)


def completed() -> uuid.UUID:
    run_workflow("testapp.add_twice", a=1, b=1)
    return WorkflowExecution.objects.get(workflow_name="testapp.add_twice").pk


# -- start ----------------------------------------------------------------------------------

VALID_START = {"workflow": "testapp.add_twice", "input": '{"a": 1, "b": 2}'}


def test_start_needs_its_permission(client, operator):
    operator(*all_but("start"))
    assert not has_button(client, LIST, "durable-start")
    assert client.get(START).status_code == 403
    assert client.post(START, VALID_START).status_code == 403
    assert not WorkflowExecution.objects.exists()


def test_start_with_view_and_start_permission_starts_and_logs(client, operator):
    user = operator("start")
    assert has_button(client, LIST, "durable-start")
    form = text(client.get(START))
    assert '<option value="testapp.add_twice">testapp.add_twice(a: int, b: int)</option>' in form

    response = client.post(
        START, {**VALID_START, "workflow_id": "order-9", "execution_timeout": "60"}
    )

    execution = WorkflowExecution.objects.get()
    assert response.status_code == 302 and response["Location"] == execution_page(execution.pk)
    assert (execution.workflow_name, execution.input) == ("testapp.add_twice", {"a": 1, "b": 2})
    assert execution.workflow_id == "order-9" and execution.timeout_at is not None
    assert log_entry(user, execution.pk, ADDITION).change_message == "Started testapp.add_twice."


def test_start_with_a_running_workflow_id_starts_nothing_and_says_so(client, operator):
    user = operator("start")
    first = start_workflow("testapp.add_twice", a=1, b=2, workflow_id="order-9")
    response = client.post(START, {**VALID_START, "workflow_id": "order-9"}, follow=True)
    assert WorkflowExecution.objects.get().pk == first
    assert messages(response) == [
        f"Execution {first} (running) already has workflow id order-9: nothing was started."
    ]
    assert not LogEntry.objects.filter(user=user).exists()


@pytest.mark.parametrize(
    ("data", "field", "error"),
    [
        ({"input": '{"a": 1,'}, "input", "Not valid JSON: Expecting property name enclosed in"),
        ({"input": "[1, 2]"}, "input", "The input must be a JSON object of keyword arguments"),
        (
            {"input": '{"a": 1}'},
            "input",
            "Bad input for workflow 'testapp.add_twice': missing a required argument: 'b'.",
        ),
        (
            {"input": '{"a": 1, "b": 2, "c": 3}'},
            "input",
            "Bad input for workflow 'testapp.add_twice': got an unexpected keyword argument 'c'.",
        ),
        (
            {"input": '{"a": 1, "b": 2, "workflow_id": "x"}'},
            "input",
            "workflow_id: an option of the start, not a workflow argument; use the field below.",
        ),
        ({"workflow": "testapp.nope"}, "workflow", "Select a valid choice. testapp.nope is not"),
        ({"execution_timeout": "-1"}, "execution_timeout", "Ensure this value is greater than"),
    ],
    ids=[
        "bad-json",
        "not-an-object",
        "missing-argument",
        "unknown-argument",
        "start-option",
        "unknown-workflow",
        "bad-timeout",
    ],
)
def test_start_refuses_what_does_not_fit_with_the_error_beside_the_field(
    client, operator, data, field, error
):
    user = operator("start")
    response = client.post(START, {**VALID_START, **data})
    assert response.status_code == 200
    beside_the_field = rf'<ul class="errorlist[^"]*" id="id_{field}_error"><li>{re.escape(error)}'
    assert re.search(beside_the_field, text(response))
    assert not WorkflowExecution.objects.exists()
    assert not LogEntry.objects.filter(user=user).exists()


# -- signal ---------------------------------------------------------------------------------


def test_signal_needs_its_permission(client, operator, drive):
    execution_id = waiting_for_signal(drive)
    operator(*all_but("signal"))
    assert not has_button(client, execution_page(execution_id), "durable-signal")
    assert client.get(url("signal", execution_id)).status_code == 403
    response = client.post(url("signal", execution_id), {"name": "item", "payload": "1"})
    assert response.status_code == 403
    assert not PendingSignal.objects.exists()


def test_signal_with_view_and_signal_permission_queues_it_and_logs(client, operator, drive):
    execution_id = waiting_for_signal(drive)
    user = operator("signal")
    assert has_button(client, execution_page(execution_id), "durable-signal")
    assert 'name="payload"' in text(client.get(url("signal", execution_id)))

    response = client.post(
        url("signal", execution_id), {"name": "item", "payload": '{"sku": "A-1"}'}
    )

    assert response.status_code == 302 and response["Location"] == execution_page(execution_id)
    signal = PendingSignal.objects.get()
    assert (signal.execution_id, signal.name, signal.payload) == (
        execution_id,
        "item",
        {"sku": "A-1"},
    )
    assert log_entry(user, execution_id).change_message == "Sent signal 'item'."
    # The workflow receives it.
    assert drive(execution_id).result == [{"sku": "A-1"}]


def test_signal_with_bad_json_stores_nothing(client, operator, drive):
    execution_id = waiting_for_signal(drive)
    user = operator("signal")
    response = client.post(url("signal", execution_id), {"name": "item", "payload": "{sku}"})
    assert response.status_code == 200
    assert "Not valid JSON" in text(response)
    assert not PendingSignal.objects.exists()
    assert not LogEntry.objects.filter(user=user).exists()


def test_signal_to_an_ended_execution_shows_why_and_stores_nothing(client, operator):
    execution_id = completed()
    user = operator("signal")
    assert not has_button(client, execution_page(execution_id), "durable-signal")
    response = client.post(url("signal", execution_id), {"name": "item", "payload": "1"})
    assert response.status_code == 200
    assert (
        f'<p class="errornote">Execution {execution_id} is already completed; it cannot '
        in text(response)
    )
    assert not PendingSignal.objects.exists()
    assert not LogEntry.objects.filter(user=user).exists()


def test_signal_to_an_unknown_execution_is_404(client, operator):
    operator("signal")
    assert client.get(url("signal", uuid.uuid4())).status_code == 404
    assert client.post(url("signal", "not-a-uuid"), {"name": "x"}).status_code == 404


# -- cancel ---------------------------------------------------------------------------------


def test_cancel_needs_its_permission(client, operator, drive):
    execution_id = waiting_for_signal(drive)
    operator(*all_but("cancel"))
    assert not has_button(client, execution_page(execution_id), "durable-cancel")
    assert client.get(url("cancel", execution_id)).status_code == 403
    assert client.post(url("cancel", execution_id), {"reason": "r"}).status_code == 403
    # Nor is the list's action offered, or applied when posted.
    listing = client.get(LIST)
    assert "cancel_executions" not in listing.content.decode()
    client.post(
        LIST,
        {
            "action": "cancel_executions",
            "_selected_action": [str(execution_id)],
            "apply": "1",
            "reason": "r",
        },
    )
    assert not WorkflowExecution.objects.get(pk=execution_id).cancel_requested


def test_cancel_with_view_and_cancel_permission_records_the_reason_and_logs(
    client, operator, drive
):
    execution_id = waiting_for_signal(drive)
    user = operator("cancel")
    assert has_button(client, execution_page(execution_id), "durable-cancel")
    assert 'name="reason"' in text(client.get(url("cancel", execution_id)))

    response = client.post(url("cancel", execution_id), {"reason": "customer asked"})

    assert response.status_code == 302 and response["Location"] == execution_page(execution_id)
    execution = WorkflowExecution.objects.get(pk=execution_id)
    assert execution.cancel_requested and execution.cancel_reason == "customer asked"
    assert log_entry(user, execution_id).change_message == "Asked to cancel: customer asked."
    assert drive(execution_id).status == ExecutionStatus.CANCELED
    requested = HistoryEvent.objects.get(execution_id=execution_id, kind=EventKind.CANCEL_REQUESTED)
    assert "customer asked" in str(requested.data)


def test_cancel_without_a_reason_records_who_canceled(client, operator, drive):
    execution_id = waiting_for_signal(drive)
    operator("cancel")
    client.post(url("cancel", execution_id), {"reason": ""})
    reason = WorkflowExecution.objects.get(pk=execution_id).cancel_reason
    assert reason == "Canceled in the admin by operator."


def test_cancel_of_an_ended_execution_says_it_had_ended(client, operator):
    execution_id = completed()
    user = operator("cancel")
    assert not has_button(client, execution_page(execution_id), "durable-cancel")
    response = client.post(url("cancel", execution_id), {"reason": "late"}, follow=True)
    assert messages(response) == ["It had ended already."]
    assert not WorkflowExecution.objects.get(pk=execution_id).cancel_requested
    assert not LogEntry.objects.filter(user=user).exists()


def test_the_list_action_asks_for_a_reason_then_cancels_the_live_ones(client, operator, drive):
    live = waiting_for_signal(drive)
    ended = completed()
    user = operator("cancel")
    selected = {"action": "cancel_executions", "_selected_action": [str(live), str(ended)]}

    asked = client.post(LIST, selected)

    assert asked.status_code == 200
    page = text(asked)
    assert "<title>Cancel the selected executions" in page
    assert '<textarea name="reason"' in page
    action_form = page.split('id="durable-action-form"', 1)[1].split("</form>", 1)[0]
    hidden = [
        (name, value)
        for name, value in re.findall(
            r'<input type="hidden" name="(\w+)" value="([^"]*)">', action_form
        )
        if name != "csrfmiddlewaretoken"
    ]
    assert sorted(hidden) == [
        ("_selected_action", min(str(live), str(ended))),
        ("_selected_action", max(str(live), str(ended))),
        ("action", "cancel_executions"),
        ("apply", "1"),
    ]
    assert not WorkflowExecution.objects.get(pk=live).cancel_requested

    # The page's own form, submitted with a reason.
    form = {"reason": "bad batch"}
    for name, value in hidden:
        form.setdefault(name, []).append(value)
    done = client.post(LIST, form, follow=True)

    assert messages(done) == ["Asked 1 execution(s) to cancel; 1 had ended."]
    execution = WorkflowExecution.objects.get(pk=live)
    assert execution.cancel_requested and execution.cancel_reason == "bad batch"
    assert not WorkflowExecution.objects.get(pk=ended).cancel_requested
    assert log_entry(user, live).change_message == "Asked to cancel: bad batch."
    assert not LogEntry.objects.filter(object_id=str(ended)).exists()


# -- retry and resume -----------------------------------------------------------------------


def test_retry_needs_its_permission(client, operator, drive):
    execution_id = failed(drive)
    operator(*all_but("retry"))
    assert not has_button(client, execution_page(execution_id), "durable-retry")
    assert client.get(url("retry", execution_id)).status_code == 403
    assert client.post(url("retry", execution_id)).status_code == 403
    assert WorkflowExecution.objects.count() == 1


def test_retry_of_a_failed_execution_starts_a_linked_one_and_logs(client, operator, drive):
    execution_id = failed(drive)
    user = operator("retry")
    page = execution_page(execution_id)
    assert re.search(r'id="durable-retry">Retry</a>', client.get(page).content.decode())
    confirm = text(client.get(url("retry", execution_id)))
    assert "A new execution starts with the same input and workflow id" in confirm
    assert 'value="Retry it"' in confirm

    response = client.post(url("retry", execution_id))

    retry = WorkflowExecution.objects.get(retried_from=execution_id)
    assert response.status_code == 302 and response["Location"] == execution_page(retry.pk)
    assert (retry.workflow_name, retry.status) == ("testapp.raises_directly", "running")
    assert log_entry(user, execution_id).change_message == f"Retried as {retry.pk}."
    old, new = text(client.get(page)), text(client.get(execution_page(retry.pk)))
    assert f'retried as <a href="{execution_page(retry.pk)}">{str(retry.pk)[:8]}</a>' in old
    assert f'retries <a href="{page}">{str(execution_id)[:8]}</a>' in new
    # Each execution is retried once: its page offers no second retry, and another POST
    # is refused with the reason.
    assert not has_button(client, page, "durable-retry")
    again = client.post(url("retry", execution_id), follow=True)
    assert "already retried" in messages(again)[0]
    assert WorkflowExecution.objects.filter(retried_from=execution_id).count() == 1


def test_resume_of_a_parked_execution_continues_it_in_place(client, operator, monkeypatch):
    execution_id = parked(monkeypatch)
    user = operator("retry")
    assert re.search(
        r'id="durable-retry">Resume</a>', client.get(execution_page(execution_id)).content.decode()
    )
    assert "continues from its history with the code deployed now" in text(
        client.get(url("retry", execution_id))
    )

    response = client.post(url("retry", execution_id))

    assert response.status_code == 302
    assert response["Location"] == execution_page(execution_id)
    assert WorkflowExecution.objects.get(pk=execution_id).status == ExecutionStatus.RUNNING
    assert WorkflowExecution.objects.count() == 1
    assert log_entry(user, execution_id).change_message == "Resumed with the code deployed now."


def test_retry_of_a_running_execution_is_refused_with_the_reason(client, operator, drive):
    execution_id = waiting_for_signal(drive)
    user = operator("retry")
    assert not has_button(client, execution_page(execution_id), "durable-retry")
    response = client.post(url("retry", execution_id), follow=True)
    assert "running" in messages(response)[0]
    assert WorkflowExecution.objects.count() == 1
    assert not LogEntry.objects.filter(user=user).exists()
