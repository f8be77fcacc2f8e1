"""Versioning on plain lists of events: ctx.patched(), ctx.deprecate_patch(), ctx.get_version()."""

import pytest

from django_durable import NonDeterminismError
from django_durable.constants import EventKind as K
from django_durable.runtime import DEFAULT_VERSION, Event
from tests.unit.test_runtime import Recorder, done, task


def shipped(payload="ok") -> Event:
    return Event(K.SIGNAL_RECEIVED, name="ship", data={"payload": payload})


def patch_marker(seq: int, name: str = "v2", deprecated: bool = False) -> Event:
    return Event(K.MARKER_RECORDED, seq, name, {"kind": "patch", "deprecated": deprecated})


def shape(commands: list[Event]) -> list[tuple]:
    return [(c.kind, c.command_seq, c.name) for c in commands]


async def before(ctx):
    total = await ctx.run_activity("testapp.add", 1, 2)
    await ctx.wait_signal("ship")
    return {"total": total, "receipt": None}


async def after(ctx):
    total = await ctx.run_activity("testapp.add", 1, 2)
    receipt = None
    if ctx.patched("v2"):
        receipt = await ctx.run_activity("testapp.async_double", total)
    await ctx.wait_signal("ship")
    return {"total": total, "receipt": receipt}


async def deprecated(ctx):
    total = await ctx.run_activity("testapp.add", 1, 2)
    ctx.deprecate_patch("v2")
    receipt = await ctx.run_activity("testapp.async_double", total)
    await ctx.wait_signal("ship")
    return {"total": total, "receipt": receipt}


async def always_new(ctx):  # the new code written without a patch
    total = await ctx.run_activity("testapp.add", 1, 2)
    receipt = await ctx.run_activity("testapp.async_double", total)
    await ctx.wait_signal("ship")
    return {"total": total, "receipt": receipt}


def test_old_execution_replayed_by_new_code_keeps_the_old_branch():
    rec = Recorder(before)
    rec.activate()
    assert rec.activate(done(1, 3)) == []  # waits for the signal, past the patch point
    instance = rec.replayed(after)
    assert instance.waiting_on() == "signal 'ship'"
    [end] = instance.activate([task(), shipped()])
    assert end.data["result"] == {"total": 3, "receipt": None}


def test_finished_old_execution_replays_through_new_code():
    rec = Recorder(before)
    rec.activate()
    rec.activate(done(1, 3))
    [end] = rec.activate(shipped())
    assert rec.replayed(after).completion == end


def test_old_execution_reaching_the_patch_point_live_takes_the_new_branch():
    rec = Recorder(before)
    rec.activate()  # the activity is still running when the new code is deployed
    instance = rec.replayed(after)
    commands = instance.activate([task(), done(1, 3)])
    assert commands[0] == patch_marker(2)
    assert shape(commands[1:]) == [(K.ACTIVITY_SCHEDULED, 3, "testapp.async_double")]


def test_new_execution_takes_the_new_branch_and_records_the_marker():
    rec = Recorder(after)
    rec.activate()
    commands = rec.activate(done(1, 3))
    assert commands[0] == patch_marker(2)
    assert shape(commands[1:]) == [(K.ACTIVITY_SCHEDULED, 3, "testapp.async_double")]
    rec.activate(done(3, 6, "testapp.async_double"))
    [end] = rec.activate(shipped())
    assert end.data["result"] == {"total": 3, "receipt": 6}
    assert rec.replayed().completion == end


def test_history_with_the_marker_needs_code_that_still_asks():
    rec = Recorder(after)
    rec.activate()
    rec.activate(done(1, 3))
    with pytest.raises(NonDeterminismError) as caught:
        rec.replayed(before)
    message = str(caught.value)
    assert "history expects marker recorded 'v2' (command #2)" in message
    assert "no longer calls ctx.patched('v2')" in message


def test_patched_is_memoized_per_execution():
    answers = []

    async def twice(ctx):
        answers.append(ctx.patched("v2"))
        await ctx.sleep(1)
        answers.append(ctx.patched("v2"))
        return answers[-1]

    rec = Recorder(twice)
    assert shape(rec.activate()) == [(K.MARKER_RECORDED, 1, "v2"), (K.TIMER_STARTED, 2, "")]
    [end] = rec.activate(Event(K.TIMER_FIRED, 2))
    assert end.data["result"] is True
    assert answers == [True, True]
    assert rec.replayed().completion == end


def test_patched_in_a_plain_def_workflow_is_synchronous():
    def plain(ctx):
        if ctx.patched("v2"):
            return ctx.run_activity("testapp.add", 2, 2)
        return ctx.run_activity("testapp.add", 1, 1)

    def plain_old(ctx):
        return ctx.run_activity("testapp.add", 1, 1)

    new = Recorder(plain)
    assert shape(new.activate()) == [
        (K.MARKER_RECORDED, 1, "v2"),
        (K.ACTIVITY_SCHEDULED, 2, "testapp.add"),
    ]
    old = Recorder(plain_old)
    old.activate()
    [end] = old.activate(done(1, 2))
    assert old.replayed(plain).completion == end


def test_deprecate_patch_accepts_histories_with_and_without_the_marker():
    with_marker = Recorder(after)
    with_marker.activate()
    with_marker.activate(done(1, 3))
    with_marker.activate(done(3, 6, "testapp.async_double"))
    [end] = with_marker.activate(shipped())
    assert with_marker.replayed(deprecated).completion == end

    without = Recorder(always_new)
    without.activate()
    without.activate(done(1, 3))
    without.activate(done(2, 6, "testapp.async_double"))
    [end] = without.activate(shipped())
    assert without.replayed(deprecated).completion == end


def test_deprecate_patch_records_a_deprecated_marker_on_new_executions():
    rec = Recorder(deprecated)
    rec.activate()
    commands = rec.activate(done(1, 3))
    assert commands[0] == patch_marker(2, deprecated=True)
    assert rec.replayed(after).waiting_on() == "activity 'testapp.async_double'"


def fee(min_supported: int, max_supported: int, seen: list):
    async def workflow(ctx):
        version = ctx.get_version("fee", min_supported, max_supported)
        seen.append(version)
        if version >= 1:
            await ctx.run_activity("testapp.async_double", 1)
        return await ctx.run_activity("testapp.add", 1, 1)

    return workflow


async def no_fee(ctx):
    return await ctx.run_activity("testapp.add", 1, 1)


def test_get_version_is_the_default_for_old_histories():
    rec = Recorder(no_fee)
    rec.activate()
    [end] = rec.activate(done(1, 2))
    seen = []
    assert rec.replayed(fee(DEFAULT_VERSION, 1, seen)).completion == end
    assert seen == [DEFAULT_VERSION] == [-1]


def test_get_version_records_the_maximum_on_new_executions():
    seen = []
    rec = Recorder(fee(DEFAULT_VERSION, 1, seen))
    commands = rec.activate()
    assert commands[0] == Event(K.MARKER_RECORDED, 1, "fee", {"kind": "version", "version": 1})
    assert shape(commands[1:]) == [(K.ACTIVITY_SCHEDULED, 2, "testapp.async_double")]
    assert seen == [1]


def test_get_version_returns_the_recorded_version_on_replay():
    rec = Recorder(fee(DEFAULT_VERSION, 1, []))
    rec.activate()
    rec.activate(done(2, 2, "testapp.async_double"))
    seen = []
    instance = rec.replayed(fee(DEFAULT_VERSION, 2, seen))
    assert seen == [1]
    assert instance.waiting_on() == "activity 'testapp.add'"


@pytest.mark.parametrize(
    ("recorded_by", "found"),
    [(fee(DEFAULT_VERSION, 1, []), "found version 1"), (no_fee, "found no marker, so version -1")],
)
def test_get_version_parks_when_the_recorded_version_is_unsupported(recorded_by, found):
    rec = Recorder(recorded_by)
    rec.activate()
    with pytest.raises(NonDeterminismError) as caught:
        rec.replayed(fee(2, 3, []))
    message = str(caught.value)
    assert f"get_version('fee') {found} in history" in message
    assert "outside the supported range [2, 3]" in message


def test_unsupported_version_parks_even_when_the_workflow_catches_it():
    async def stubborn(ctx):
        try:
            ctx.get_version("fee", 2, 3)
        except NonDeterminismError:
            return "swallowed"

    rec = Recorder(no_fee)
    rec.activate()
    with pytest.raises(NonDeterminismError, match="supported range"):
        rec.replayed(stubborn)


def test_get_version_is_memoized_per_change_id():
    async def asks_twice(ctx):
        first = ctx.get_version("fee", DEFAULT_VERSION, 1)
        await ctx.sleep(1)
        return [first, ctx.get_version("fee", DEFAULT_VERSION, 1)]

    rec = Recorder(asks_twice)
    assert shape(rec.activate()) == [(K.MARKER_RECORDED, 1, "fee"), (K.TIMER_STARTED, 2, "")]
    [end] = rec.activate(Event(K.TIMER_FIRED, 2))
    assert end.data["result"] == [1, 1]
    assert rec.replayed().completion == end
