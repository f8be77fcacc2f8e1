"""An operator on call uses the admin console in a real browser: logs in through the login
form, starts workflows from the start form that a real worker then runs, signals one (after
a payload the form refuses), and reads the timeline. Along the way it saves the screenshots
that docs/admin.md shows, so re-running this test refreshes them."""

import re
import time

import pytest
from django.contrib.auth.models import Group, Permission, User

EXECUTIONS = "/admin/django_durable/workflowexecution/"
EXECUTION_PAGE = re.compile(r"/admin/django_durable/workflowexecution/[0-9a-f-]{36}/change/$")
# The "On-call operators" group of docs/admin.md: read every table, and every action.
OPERATOR_PERMISSIONS = [
    "view_workflowexecution",
    "view_activitytask",
    "view_historyevent",
    "view_pendingsignal",
    "view_worker",
    "start_execution",
    "signal_execution",
    "cancel_execution",
    "retry_execution",
]
PASSWORD = "on-call-password"
WAIT_SECONDS = 30  # for the worker to finish what it was given


@pytest.fixture
def operator(transactional_db) -> User:
    """A staff user whose only rights come from the group docs/admin.md tells to create."""
    group = Group.objects.create(name="On-call operators")
    group.permissions.set(
        Permission.objects.filter(
            content_type__app_label="django_durable", codename__in=OPERATOR_PERMISSIONS
        )
    )
    assert group.permissions.count() == len(OPERATOR_PERMISSIONS)
    operator = User.objects.create_user("oncall", password=PASSWORD, is_staff=True)
    operator.groups.add(group)
    return operator


def log_in(page, server: str) -> None:
    page.goto(server + EXECUTIONS)
    assert "/admin/login/" in page.url  # sent to the login form first
    page.fill("#id_username", "oncall")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(server + EXECUTIONS)


def reload_until(page, selector: str, timeout: float = WAIT_SECONDS):
    """Reload the page, as an operator would, until `selector` shows; bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    while page.locator(selector).count() == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector!r} not shown on {page.url} within {timeout} s")
        time.sleep(0.25)
        page.reload()
    return page.locator(selector)


def start_from_form(page, server: str, workflow: str, arguments: str, workflow_id: str):
    """Fill the start form and leave it unsent (for a screenshot); returns the submit button."""
    page.goto(server + EXECUTIONS)
    page.click("#durable-start")
    page.wait_for_url(server + EXECUTIONS + "start/")
    page.select_option("#id_workflow", workflow)
    page.fill("#id_input", arguments)
    page.fill("#id_workflow_id", workflow_id)
    return page.locator("#durable-submit")


def submitted_execution(page, submit, message: str) -> str:
    """Send the form; it must land on an execution's page saying `message`. Its URL."""
    submit.click()
    page.wait_for_url(EXECUTION_PAGE)
    assert message in page.locator("ul.messagelist").inner_text()
    return page.url


def count_shown(page, status: str) -> str:
    return page.locator(f"#durable-status-counts a[data-status={status}] .count").inner_text()


def test_operator_starts_signals_and_reads_executions(
    operator, console, start_worker, page, screenshot
):
    start_worker("--procs", "2", "--tick", "0.1")
    log_in(page, console)
    assert page.request.get(console + "/static/admin/css/base.css").ok  # pages look real
    assert page.locator("#durable-start").is_visible()
    # Fold the admin's navigation away, as the browser then remembers: even at 1440 pixels the
    # list's last columns ("waiting for") would otherwise scroll out of sight.
    page.click("#toggle-nav-sidebar")
    assert count_shown(page, "running") == "0"

    # A workflow with two activities and a durable timer, started from the form.
    submit = start_from_form(
        page, console, "testapp.onboard_user_short", '{"user_id": 7, "wait_seconds": 1}', "user-7"
    )
    screenshot("start", full_page=False)
    onboarding = submitted_execution(page, submit, "Started testapp.onboard_user_short")
    reload_until(page, ".field-badge .durable-status.durable-status-completed")
    assert '"ok": true' in page.locator(".field-result_json").inner_text()
    timeline = page.locator("#durable-timeline tr.durable-event")
    kinds = [
        re.search(r"durable-event-(\w+)", timeline.nth(i).get_attribute("class")).group(1)
        for i in range(timeline.count())
    ]
    assert kinds[0] == "workflow_started"
    assert kinds[-1] == "workflow_completed"
    for kind in ("activity_scheduled", "activity_completed", "timer_started", "timer_fired"):
        assert kind in kinds
    assert page.locator("#durable-activities .durable-status.durable-status-completed").count() == 2
    assert page.locator("#durable-children").inner_text().endswith("None.")
    assert page.locator("#durable-nondeterminism").count() == 0
    assert page.locator("#durable-signal").count() == 0  # nothing to signal once ended

    # The same workflow id again: nothing starts, the operator lands on the first one.
    submit = start_from_form(
        page, console, "testapp.onboard_user_short", '{"user_id": 7, "wait_seconds": 1}', "user-7"
    )
    assert submitted_execution(page, submit, "nothing was started") == onboarding

    # A workflow that waits for a signal: the list says so.
    submit = start_from_form(page, console, "testapp.collect_signals", '{"count": 1}', "order-42")
    waiting = submitted_execution(page, submit, "Started testapp.collect_signals")
    reload_until(page, ".field-waits_for:has-text('signal item')")
    page.goto(console + EXECUTIONS)
    row = page.locator("#result_list tbody tr", has_text="order-42")
    assert row.locator(".durable-status.durable-status-running").count() == 1
    assert row.locator("td.field-waits_for").inner_text() == "signal item"
    assert count_shown(page, "running") == "1"
    assert count_shown(page, "completed") == "1"
    screenshot("list", full_page=False)  # the full page is the long workflow filter

    # Signal it: a payload that is not JSON is refused beside the field, nothing is sent.
    page.goto(waiting)
    page.click("#durable-signal")
    page.wait_for_url(re.compile(r"/signal/$"))
    page.fill("#id_name", "item")
    page.fill("#id_payload", '{"sku": "A-1", "qty": 2')
    page.click("#durable-submit")
    error = page.locator(".form-row.errors .errorlist")
    assert error.inner_text().startswith("Not valid JSON:")
    assert page.url.endswith("/signal/")
    screenshot("signal", full_page=False)
    page.fill("#id_payload", '{"sku": "A-1", "qty": 2}')
    submitted_execution(page, page.locator("#durable-submit"), "Sent signal 'item'")
    reload_until(page, ".field-badge .durable-status.durable-status-completed")
    assert '"sku": "A-1"' in page.locator(".field-result_json").inner_text()
    assert page.locator("#durable-timeline tr.durable-event-signal_received").count() == 1

    page.goto(onboarding)
    screenshot("execution")

    # Each action is audited under the operator's name, in the page's History.
    page.goto(waiting)
    page.click("a.historylink")
    audit = page.locator("#change-history tbody tr")
    assert [
        [cell.strip() for cell in audit.nth(i).locator("th, td").all_inner_texts()[1:]]
        for i in range(audit.count())
    ] == [["oncall", "Started testapp.collect_signals."], ["oncall", "Sent signal 'item'."]]
