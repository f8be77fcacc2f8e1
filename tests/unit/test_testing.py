"""`django_durable.testing.replay` on histories given as events, dicts and files: no database."""

import json
import uuid

import pytest

from django_durable import NonDeterminismError, WorkflowNotFound
from django_durable.constants import EventKind as K
from django_durable.runtime import Event
from django_durable.testing import ReplayResult, replay
from tests.unit.test_runtime import T0, Recorder, done, task


async def adds(ctx, a: int, b: int) -> int:  # not registered: the code under test
    first = await ctx.run_activity("testapp.add", a, b)
    return await ctx.run_activity("testapp.add", first, b)


def recorded_history(**inputs) -> list[Event]:
    rec = Recorder(adds, **inputs)
    rec.activate()
    rec.activate(done(1, 3))
    rec.activate(done(2, 5))
    return rec.history


def as_dicts(history: list[Event]) -> list[dict]:
    return [
        {"kind": e.kind, "command_seq": e.command_seq, "name": e.name, "data": e.data}
        for e in history
    ]


def test_replays_events_with_an_unregistered_function_and_the_recorded_input():
    result = replay(recorded_history(a=1, b=2), adds)
    assert result == ReplayResult("completed", result=5, events=9)
    assert result.completed and result.describe() == "completed"


def test_replays_exported_dicts_with_a_registered_name():
    result = replay(as_dicts(recorded_history(a=1, b=2)), "testapp.add_twice")
    assert result.result == 5


def test_replays_an_export_file(tmp_path):
    export = {
        "workflow_name": "testapp.add_twice",
        "execution_id": str(uuid.UUID(int=7)),
        "input": {"a": 1, "b": 2},
        "events": as_dicts(recorded_history(a=1, b=2)),
    }
    path = tmp_path / "history.json"
    path.write_text(json.dumps(export))
    assert replay(export).result == 5  # the workflow named by the export
    assert replay(str(path)).result == 5
    assert replay(path, adds).result == 5


def test_a_history_that_stops_at_a_wait_reports_what_it_waits_on():
    result = replay(recorded_history(a=1, b=2)[:6], adds)
    assert result.status == "running" and not result.completed
    assert result.waiting_on == "activity 'testapp.add'"
    assert result.describe() == "running (waiting on activity 'testapp.add')"


def test_a_timed_out_history_replays_up_to_where_the_engine_ended_it():
    history = recorded_history(a=1, b=2)[:6]
    history += [task(T0 + 60), Event(K.WORKFLOW_TIMED_OUT)]
    result = replay(history, adds)
    assert result.status == "timed_out"
    assert result.waiting_on == "activity 'testapp.add'"
    assert result.events == 8


def test_failure_is_reported_not_raised():
    async def fails(ctx, a: int, b: int):
        raise RuntimeError("kaput")

    rec = Recorder(fails, a=1, b=2)
    rec.activate()
    result = replay(rec.history, fails)
    assert result.status == "failed"
    assert result.error["message"] == "kaput"
    assert result.describe() == "failed (builtins.RuntimeError: kaput)"


def test_incompatible_code_raises_with_expected_and_found():
    async def changed(ctx, a: int, b: int):
        return await ctx.run_activity("testapp.async_double", a)

    with pytest.raises(NonDeterminismError) as caught:
        replay(recorded_history(a=1, b=2), changed)
    assert (
        "history expects activity scheduled 'testapp.add' (command #1), but the code now "
        "issued activity scheduled 'testapp.async_double' (command #1)"
    ) in str(caught.value)


def test_inputs_and_execution_id_can_be_given():
    async def draws(ctx, n: int):
        return [n, ctx.random().random()]

    rec = Recorder(draws, n=1)  # execution id 7
    [end] = rec.activate()
    assert replay(rec.history, draws, execution_id=uuid.UUID(int=7)).result == end.data["result"]
    other = replay(rec.history, draws, inputs={"n": 2}, execution_id=str(uuid.UUID(int=8)))
    assert other.result[0] == 2
    assert other.result[1] != end.data["result"][1]


def test_bad_histories_are_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match=r"History event #1 must be an Event or a dict"):
        replay([{"name": "x"}], adds)
    with pytest.raises(ValueError, match=r"An exported history is a dict with an 'events' list\."):
        replay({"workflow_name": "x"}, adds)
    with pytest.raises(ValueError, match="Cannot read"):
        replay(str(tmp_path / "missing.json"), adds)
    with pytest.raises(ValueError, match="does not name its workflow"):
        replay(recorded_history(a=1, b=2))
    with pytest.raises(WorkflowNotFound, match=r"Did you mean 'testapp\.add_twice'"):
        replay(recorded_history(a=1, b=2), "testapp.add_twic")
