"""What a workflow waits for (`WorkflowInstance.waits()`), and what a non-determinism error
says it expected and found: pure runtime, no database."""

import asyncio
import uuid

import pytest

from django_durable import NonDeterminismError
from django_durable.constants import EventKind as K
from django_durable.runtime import Event
from tests.unit.test_runtime import INFO, T0, Recorder, done

# T0 is 2023-11-14T22:13:20 UTC.


def signal(name: str, payload=None) -> Event:
    return Event(K.SIGNAL_RECEIVED, name=name, data={"payload": payload})


def activity(seq: int) -> dict:
    return {"kind": "activity", "seq": seq, "name": "testapp.add"}


def test_a_gather_of_activities_waits_for_those_without_an_outcome():
    async def gather_three(ctx):
        return await asyncio.gather(*(ctx.run_activity("testapp.add", i, i) for i in range(3)))

    rec = Recorder(gather_three)
    assert rec.instance.waits() == []  # not started yet
    rec.activate()
    assert rec.instance.waits() == [activity(1), activity(2), activity(3)]
    rec.activate(done(2, 2))
    assert rec.instance.waits() == [activity(1), activity(3)]
    assert rec.instance.waiting_on() == "activity 'testapp.add', activity 'testapp.add'"
    assert rec.replayed().waits() == [activity(1), activity(3)]
    rec.activate(done(1, 0), done(3, 4))
    assert rec.instance.done and rec.instance.waits() == []
    assert rec.instance.waiting_on() == "nothing"


def test_a_signal_with_a_timeout_waits_for_the_signal_and_its_timer():
    async def approval(ctx):
        await ctx.run_activity("testapp.add", 1, 1)
        answer = await ctx.wait_signal("approve", timeout=60)
        await ctx.sleep(3600)
        return answer

    rec = Recorder(approval)
    rec.activate()
    rec.activate(done(1, 2))
    expected = [
        {"kind": "signal", "name": "approve"},
        {"kind": "timer", "seq": 2, "until": "2023-11-14T22:14:20+00:00"},
    ]
    assert rec.instance.waits() == expected
    assert rec.instance.waiting_on() == "signal 'approve', 1 timer(s)"
    assert rec.replayed().waits() == expected  # a replay places the signal alike
    rec.activate(signal("approve", "yes"), at=T0 + 5)  # the timeout's timer is canceled
    assert rec.instance.waits() == [
        {"kind": "timer", "seq": 3, "until": "2023-11-14T23:13:25+00:00"}
    ]


def test_a_child_is_waited_for_with_its_execution_id():
    async def parent(ctx):
        return await ctx.run_workflow("testapp.add_twice", a=1, b=2)

    rec = Recorder(parent)
    rec.activate()
    child_id = uuid.uuid5(INFO.execution_id, "child-1")
    assert rec.instance.waits() == [
        {
            "kind": "child",
            "seq": 1,
            "name": "testapp.add_twice",
            "execution_id": str(child_id),
        }
    ]
    assert rec.instance.waiting_on() == "child workflow 'testapp.add_twice'"
    ended = Event(K.CHILD_WORKFLOW_ENDED, 1, "testapp.add_twice", {"status": "completed"})
    rec.activate(ended)
    assert rec.instance.done and rec.instance.waits() == []


def test_a_timer_is_waited_for_until_its_fire_time_in_utc():
    def plain(ctx):
        ctx.sleep(3600)

    rec = Recorder(plain)
    rec.activate()
    assert rec.instance.waits() == [
        {"kind": "timer", "seq": 1, "until": "2023-11-14T23:13:20+00:00"}
    ]
    assert rec.instance.waiting_on() == "1 timer(s)"


def test_signals_take_their_place_among_the_commands_once_per_name():
    async def mixed(ctx):
        return await asyncio.gather(
            ctx.run_activity("testapp.add", 1, 1),
            ctx.wait_signal("go"),
            ctx.wait_signal("go"),
            ctx.run_activity("testapp.add", 2, 2),
            ctx.wait_signal("stop"),
        )

    rec = Recorder(mixed)
    rec.activate()
    expected = [
        activity(1),
        {"kind": "signal", "name": "go"},
        activity(2),
        {"kind": "signal", "name": "stop"},
    ]
    assert rec.instance.waits() == expected
    assert rec.replayed().waits() == expected
    rec.activate(signal("go"), signal("go"))
    assert rec.instance.waits() == [activity(1), activity(2), {"kind": "signal", "name": "stop"}]


def test_a_signal_name_that_cannot_be_stored_is_escaped():
    async def odd(ctx):
        await ctx.wait_signal("a\x00b")

    rec = Recorder(odd)
    rec.activate()
    assert rec.instance.waits() == [{"kind": "signal", "name": "a\\x00b"}]


def test_an_ended_workflow_waits_for_nothing_it_left_unawaited():
    async def leaves_work(ctx):
        activity = asyncio.ensure_future(ctx.run_activity("testapp.add", 1, 1))
        ctx.start_workflow("testapp.add_twice", a=1, b=2)
        return activity.done()

    rec = Recorder(leaves_work)
    rec.activate()
    assert rec.instance.done
    assert rec.instance.waits() == []


def test_a_removed_command_is_found_as_no_further_command():
    async def original(ctx):
        await ctx.sleep(1)

    async def removed(ctx):
        return None

    rec = Recorder(original)
    rec.activate()
    with pytest.raises(NonDeterminismError) as caught:
        rec.replayed(removed)
    assert caught.value.expected == "timer started (command #1)"
    assert caught.value.found == "workflow completed"


def test_other_non_determinism_errors_carry_no_comparison():
    error = NonDeterminismError("something else")
    assert (str(error), error.expected, error.found) == ("something else", None, None)
