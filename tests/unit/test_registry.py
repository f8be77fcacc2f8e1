"""Registration, names, discovery, the public surface and the settings checks."""

import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

import django_durable
from django_durable import ActivityNotFound, WorkflowNotFound
from django_durable.checks import check_durable_settings
from django_durable.registry import Registry, register
from tests.testapp import durable_activities, durable_workflows

ROOT = Path(__file__).resolve().parents[2]


def test_default_names_are_app_label_and_function():
    assert register.get_workflow("yourapp.onboard_user").fn.__name__ == "onboard_user"
    assert register.get_activity("yourapp.send_welcome_email").queue == "default"
    assert register.get_workflow(durable_workflows.add_twice).name == "testapp.add_twice"
    assert register.get_activity(durable_activities.add).name == "testapp.add"


def test_name_override():
    assert register.get_workflow("custom.workflow").fn is durable_workflows.custom_workflow
    assert register.get_activity(durable_activities.custom_named).name == "custom.named"


def test_style_is_detected():
    assert register.get_workflow("yourapp.onboard_user").is_async is False
    assert register.get_workflow("testapp.fan_out").is_async is True


def test_two_definitions_of_one_name_are_refused_naming_both():
    registry = Registry()

    def first(ctx):
        pass

    def second(ctx):
        pass

    registry.workflow(name="x.same")(first)
    with pytest.raises(ImproperlyConfigured) as caught:
        registry.workflow(name="x.same")(second)
    message = str(caught.value)
    assert "test_two_definitions_of_one_name_are_refused_naming_both.<locals>.first" in message
    assert "test_two_definitions_of_one_name_are_refused_naming_both.<locals>.second" in message


def test_a_workflow_without_context_parameter_is_refused():
    with pytest.raises(ImproperlyConfigured, match="must take the workflow context"):
        Registry().workflow(name="x.y")(lambda: None)


def test_function_outside_an_installed_app_needs_a_name():
    def orphan(ctx):
        pass

    orphan.__module__ = "somewhere.else"
    with pytest.raises(ImproperlyConfigured, match="pass name="):
        Registry().workflow()(orphan)


def test_unknown_names_suggest_close_ones():
    with pytest.raises(WorkflowNotFound, match=r"Did you mean 'yourapp\.onboard_user'"):
        register.get_workflow("yourapp.onboard_usr")
    with pytest.raises(ActivityNotFound, match="No activity is registered as 'nope'"):
        register.get_activity("nope")
    with pytest.raises(ActivityNotFound, match=r"decorate it with @register\.activity"):
        register.get_activity(print)


def test_public_names_are_pinned():
    assert set(django_durable.__all__) == {
        "ActivityCanceled",
        "ActivityError",
        "ActivityNotFound",
        "ActivityProcessDied",
        "ActivityTimeoutError",
        "RetryPolicy",
        "DurableError",
        "ExecutionFinished",
        "ExecutionNotRetryable",
        "InvalidArgument",
        "NonDeterminismError",
        "PayloadError",
        "WaitTimeout",
        "WorkflowBlocked",
        "WorkflowCanceled",
        "WorkflowContext",
        "WorkflowFailed",
        "WorkflowNotFound",
        "WorkflowTimedOut",
        "activity",
        "cancel_workflow",
        "register",
        "retry_workflow",
        "run_workflow",
        "send_signal",
        "start_workflow",
        "start_workflows",
        "wait_workflow",
    }
    for name in django_durable.__all__:
        assert getattr(django_durable, name) is not None
    assert django_durable.register is register
    for name in django_durable.__all__:
        value = getattr(django_durable, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, django_durable.DurableError)


def test_tutorial_files_are_verbatim_fixtures():
    """Each `# yourapp/...` block of the tutorial is in the test project as written (that the
    tutorial keeps every line of shared/TUTORIAL.md is tests/docs/test_site.py's check)."""
    tutorial = (ROOT / "docs" / "tutorial.md").read_text()
    blocks = re.findall(r"```python\n(# yourapp/(durable_\w+)\.py\n.*?)```", tutorial, re.S)
    assert len(blocks) == 4
    for code, module in blocks:
        fixture = (ROOT / "tests" / "yourapp" / f"{module}.py").read_text()
        assert code in fixture


def test_settings_check_accepts_the_test_settings():
    assert check_durable_settings() == []


@override_settings(DURABLE={"LEASE_SECOND": 3, "SWEEP_SECONDS": -1})
def test_settings_check_reports_unknown_keys_and_bad_values():
    ids = sorted(error.id for error in check_durable_settings())
    assert ids == ["django_durable.E002", "django_durable.E004"]


@pytest.mark.django_db
def test_sqlite_is_tuned_for_several_writing_processes():
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert connection.settings_dict["OPTIONS"]["timeout"] == 20


def test_deferred_sqlite_transactions_are_warned_about():
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    options = connection.settings_dict["OPTIONS"]
    options["transaction_mode"] = "DEFERRED"
    try:
        ids = [error.id for error in check_durable_settings()]
    finally:
        options["transaction_mode"] = "IMMEDIATE"
    assert ids == ["django_durable.W001"]


@pytest.mark.django_db
def test_migrations_match_the_models():
    from django.core.management import call_command

    call_command("makemigrations", "django_durable", "testapp", "--check", "--dry-run", verbosity=0)
