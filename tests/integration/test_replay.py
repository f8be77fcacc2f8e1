"""Replaying stored histories: `testing.replay`, `export_history` and `manage.py durable_replay`."""

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_durable import (
    NonDeterminismError,
    WorkflowBlocked,
    WorkflowNotFound,
    register,
    start_workflow,
)
from django_durable.constants import EventKind
from django_durable.models import WorkflowExecution
from django_durable.registry import WorkflowDefinition
from django_durable.testing import aexport_history, areplay, export_history, replay

pytestmark = pytest.mark.django_db(transaction=True)

REPO_ROOT = Path(__file__).resolve().parents[2]


async def renamed(ctx, a: int, b: int) -> int:
    return await ctx.run_activity("testapp.async_double", a)


@pytest.fixture
def finished(drive):
    execution_id = start_workflow("testapp.add_twice", a=1, b=2)
    drive(execution_id)
    return execution_id


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        run(*args)
    return str(caught.value)


def test_export_is_json_and_replays_like_the_stored_history(finished, tmp_path):
    export = json.loads(json.dumps(export_history(finished)))
    assert export["workflow_name"] == "testapp.add_twice"
    assert export["execution_id"] == str(finished)
    assert export["input"] == {"a": 1, "b": 2}
    assert export["events"][0]["kind"] == EventKind.WORKFLOW_STARTED
    assert export["events"][-1] == {
        "kind": EventKind.WORKFLOW_COMPLETED,
        "command_seq": None,
        "name": "",
        "data": {"result": 5},
    }
    stored = replay(finished)
    assert stored.result == 5 and stored.events == len(export["events"])
    assert replay(export) == stored
    assert replay(str(finished), "testapp.add_twice") == stored
    assert replay(WorkflowExecution.objects.get()) == stored


def test_replay_writes_nothing(finished):
    before = list(WorkflowExecution.objects.values())
    with CaptureQueriesContext(connection) as queries:
        replay(finished)
        with pytest.raises(NonDeterminismError):
            replay(finished, renamed)
    writes = [q["sql"] for q in queries if not q["sql"].lstrip().upper().startswith("SELECT")]
    assert writes == []
    assert list(WorkflowExecution.objects.values()) == before


def test_replay_finds_the_mismatch_of_new_code(finished):
    with pytest.raises(NonDeterminismError) as caught:
        replay(finished, renamed)
    assert "history expects activity scheduled 'testapp.add' (command #1)" in str(caught.value)


def test_unknown_execution_is_a_clear_error():
    missing = uuid.uuid4()
    with pytest.raises(WorkflowNotFound, match=f"No workflow execution has the id '{missing}'"):
        replay(missing)
    with pytest.raises(WorkflowNotFound):
        export_history("not-a-uuid")


async def test_async_twins(finished):
    export = await aexport_history(finished)
    assert (await areplay(finished)).result == 5
    assert (await areplay(export)).result == 5


# -- manage.py durable_replay ---------------------------------------------------------------


def test_command_replays_an_execution(finished):
    assert run("durable_replay", str(finished)) == "OK: replayed 9 events, completed\n"


def test_command_reports_what_a_running_execution_waits_on(drive):
    execution_id = start_workflow("testapp.collect_signals", count=1)
    out = run("durable_replay", str(execution_id))
    assert out == "OK: replayed 1 events, running (waiting on its first workflow task)\n"
    with pytest.raises(WorkflowBlocked):
        drive(execution_id)
    out = run("durable_replay", str(execution_id))
    assert out == "OK: replayed 2 events, running (waiting on signal 'item')\n"


def test_command_exports_then_replays_the_file(finished, tmp_path):
    target = tmp_path / "history.json"
    out = run("durable_replay", str(finished), "--export", str(target))
    assert out == f"Exported 9 events to {target}.\nOK: replayed 9 events, completed\n"
    assert json.loads(target.read_text()) == export_history(finished)
    assert run("durable_replay", "--file", str(target)) == "OK: replayed 9 events, completed\n"


def test_command_fails_on_non_determinism_in_one_line(finished, monkeypatch):
    monkeypatch.setitem(
        register.workflows,
        "testapp.add_twice",
        WorkflowDefinition("testapp.add_twice", renamed, True),
    )
    message = refused("durable_replay", str(finished))
    assert "\n" not in message
    assert message.startswith("Workflow 'testapp.add_twice' (execution ")
    assert "history expects activity scheduled 'testapp.add' (command #1), but the code now " in (
        message
    )


def test_command_replays_with_another_workflow(finished):
    message = refused("durable_replay", str(finished), "--workflow", "testapp.one_effect")
    assert "is not deterministic" in message
    unknown = refused("durable_replay", str(finished), "--workflow", "testapp.nope")
    assert unknown.startswith("No workflow is registered as 'testapp.nope'.")


def test_command_refuses_bad_ids_and_arguments(finished, tmp_path):
    missing = uuid.uuid4()
    assert (
        refused("durable_replay", str(missing)) == f"No workflow execution has the id '{missing}'."
    )
    assert refused("durable_replay", "42") == "No workflow execution has the id '42'."
    assert refused("durable_replay") == "Pass either an EXECUTION_ID or --file FILE."
    both = refused("durable_replay", str(finished), "--file", "x.json")
    assert both == "Pass either an EXECUTION_ID or --file FILE."
    assert refused("durable_replay", "--file", "x.json", "--export", "y.json") == (
        "--export needs an EXECUTION_ID: a --file history is exported."
    )
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert refused("durable_replay", "--file", str(bad)) == (
        f"'{bad}' holds no exported history (no 'events' list)."
    )
    assert refused("durable_replay", "--file", str(tmp_path / "none.json")).startswith(
        "Cannot read"
    )


def test_non_determinism_from_the_command_line_exits_1(tmp_path):
    export = {
        "workflow_name": "testapp.add_twice",
        "execution_id": str(uuid.UUID(int=1)),
        "input": {"a": 1, "b": 2},
        "events": [
            {"kind": "workflow_started", "data": {"input": {"a": 1, "b": 2}}},
            {"kind": "workflow_task_started", "data": {"time": 1_700_000_000.0}},
            {"kind": "activity_scheduled", "command_seq": 1, "name": "testapp.async_double"},
        ],
    }
    path = tmp_path / "history.json"
    path.write_text(json.dumps(export))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    completed = subprocess.run(
        [sys.executable, "-m", "django", "durable_replay", "--file", str(path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert completed.stderr == (
        "CommandError: Workflow 'testapp.add_twice' (execution "
        "00000000-0000-0000-0000-000000000001) is not deterministic: history expects activity "
        "scheduled 'testapp.async_double' (command #1), but the code now issued activity "
        "scheduled 'testapp.add' (command #1). Deploy code compatible with this history, or "
        "branch with ctx.patched().\n"
    )
