"""The runtime against hostile workflow code (issue 7), on plain lists of events.

Timers out of range, `asyncio.as_completed` over coroutines, timers canceled early,
`BaseException`s and unstorable results or errors: each ends in a clear outcome that the
engine can record, never in an exception out of `WorkflowInstance.activate`.
"""

import asyncio
import gc
import math
import warnings
from datetime import UTC, datetime

import pytest

from django_durable.constants import EventKind as K
from django_durable.runtime import Event
from django_durable.runtime.instance import MAX_DURATION_SECONDS
from tests.testapp import runtime_hostile as hostile
from tests.unit.test_runtime import T0, Recorder, done

LIMIT = "must be a finite number of seconds, at most 3153600000 (100 years)"


def fired(seq: int) -> Event:
    return Event(K.TIMER_FIRED, seq)


def signal(name: str, payload) -> Event:
    return Event(K.SIGNAL_RECEIVED, name=name, data={"payload": payload})


def failure(commands: list[Event]) -> dict:
    *_, end = commands
    assert end.kind == K.WORKFLOW_FAILED, commands
    return end.data["error"]


# -- timers out of range ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ctx: ctx.sleep(math.inf), f"ctx.sleep() {LIMIT}, not inf."),
        (lambda ctx: ctx.sleep(-math.inf), f"ctx.sleep() {LIMIT}, not -inf."),
        (lambda ctx: ctx.sleep(math.nan), f"ctx.sleep() {LIMIT}, not nan."),
        (lambda ctx: ctx.sleep(1e12), f"ctx.sleep() {LIMIT}, not 1000000000000.0."),
        (lambda ctx: ctx.sleep(10**400), f"ctx.sleep() {LIMIT}, not 1000"),
        (lambda ctx: ctx.sleep(MAX_DURATION_SECONDS + 1), f"{LIMIT}, not 3153600001."),
        (
            lambda ctx: ctx.wait_signal("x", timeout=1e12),
            f"ctx.wait_signal()'s timeout {LIMIT}, not 1000000000000.0.",
        ),
        (
            lambda ctx: asyncio.sleep(math.inf),
            f"A timer in a workflow (asyncio.sleep, asyncio.wait_for, asyncio.timeout) {LIMIT}, "
            f"not inf.",
        ),
        (lambda ctx: asyncio.sleep(math.nan), f"{LIMIT}, not nan."),
        (lambda ctx: asyncio.wait_for(ctx.wait_signal("x"), timeout=math.inf), LIMIT),
    ],
)
def test_out_of_range_timer_fails_the_workflow_at_the_call(call, message):
    async def sleeper(ctx):
        await call(ctx)

    commands = Recorder(sleeper).activate()
    assert [c.kind for c in commands] == [K.WORKFLOW_FAILED]  # no timer recorded
    error = failure(commands)
    assert error["type"] == "builtins.ValueError"
    assert message in error["message"]
    assert "await call(ctx)" in error["traceback"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ctx: ctx.sleep("5"), "ctx.sleep() must be a number of seconds, not '5'."),
        (lambda ctx: ctx.sleep(None), "ctx.sleep() must be a number of seconds, not None."),
        (
            lambda ctx: ctx.wait_signal("x", timeout="60"),
            "ctx.wait_signal()'s timeout must be a number of seconds, not '60'.",
        ),
    ],
)
def test_non_number_duration_is_a_type_error(call, message):
    async def sleeper(ctx):
        await call(ctx)

    error = failure(Recorder(sleeper).activate())
    assert (error["type"], error["message"]) == ("builtins.TypeError", message)


def test_other_durations_out_of_range_are_refused_too():
    async def activity_timeout(ctx):
        await ctx.run_activity("testapp.add", 1, 2, start_to_close_timeout=math.inf)

    async def child_timeout(ctx):
        ctx.start_workflow("testapp.add_twice", a=1, b=2, execution_timeout=math.nan)

    assert failure(Recorder(activity_timeout).activate())["message"] == (
        f"start_to_close_timeout {LIMIT}, not inf."
    )
    assert failure(Recorder(child_timeout).activate())["message"] == (
        f"execution_timeout {LIMIT}, not nan."
    )


def test_workflow_may_catch_a_refused_timer_and_go_on():
    async def careful(ctx):
        try:
            await ctx.sleep(math.inf)
        except ValueError as exc:
            refused = str(exc)
        await ctx.sleep(60)
        return refused

    rec = Recorder(careful)
    [timer] = rec.activate()
    assert (timer.kind, timer.command_seq, timer.data["fire_at"]) == (K.TIMER_STARTED, 1, T0 + 60)
    [end] = rec.activate(fired(1), at=T0 + 60)
    assert end.data["result"] == f"ctx.sleep() {LIMIT}, not inf."
    assert rec.replayed().completion == end


def test_plain_def_workflow_gets_the_error_at_its_call():
    def plain(ctx):
        try:
            ctx.sleep(math.nan)
        except ValueError as exc:
            return str(exc)

    [end] = Recorder(plain).activate()
    assert end.data["result"] == f"ctx.sleep() {LIMIT}, not nan."


def test_refused_signal_timeout_leaves_no_waiter_behind():
    async def waits_twice(ctx):
        try:
            await ctx.wait_signal("s", timeout=math.inf)
        except ValueError:
            pass
        return await ctx.wait_signal("s")

    rec = Recorder(waits_twice)
    assert rec.activate() == []
    [end] = rec.activate(signal("s", "first"))
    assert end.data["result"] == "first"  # not swallowed by the refused call


def test_longest_timer_is_accepted_and_its_fire_time_is_a_date():
    async def patient(ctx):
        await ctx.sleep(MAX_DURATION_SECONDS)
        return await ctx.wait_signal("s", timeout=float(MAX_DURATION_SECONDS))

    rec = Recorder(patient)
    [timer] = rec.activate()
    assert timer.data == {"duration": MAX_DURATION_SECONDS, "fire_at": T0 + MAX_DURATION_SECONDS}
    assert datetime.fromtimestamp(timer.data["fire_at"], tz=UTC).year == 2123
    [again] = rec.activate(fired(1), at=T0 + MAX_DURATION_SECONDS)
    assert datetime.fromtimestamp(again.data["fire_at"], tz=UTC).year == 2223


def test_negative_duration_counts_as_zero_and_zero_is_a_timer():
    async def impatient(ctx):
        await ctx.sleep(-5)
        await ctx.wait_signal("s", timeout=-1)
        await ctx.sleep(0)
        await asyncio.sleep(-1)  # asyncio's own rule: no timer at all
        return "done"

    rec = Recorder(impatient)
    [first] = rec.activate()
    assert first.data == {"duration": 0.0, "fire_at": T0}
    [second] = rec.activate(fired(1))
    assert second.data == {"duration": 0.0, "fire_at": T0}
    [third] = rec.activate(fired(2))
    assert third.data == {"duration": 0.0, "fire_at": T0}
    [end] = rec.activate(fired(3))
    assert end.data["result"] == "done"


# -- asyncio.as_completed --------------------------------------------------------------------


def test_as_completed_over_coroutines_is_refused_and_closes_them():
    error = failure(Recorder(hostile.as_completed_coroutines, n=3).activate())
    assert error["type"] == "builtins.TypeError"
    assert error["message"].startswith(
        "asyncio.as_completed() takes futures or tasks in a workflow, not coroutines: it would "
        "start them in memory-address order, which differs between runs"
    )
    advice = "asyncio.as_completed([asyncio.ensure_future(c) for c in coroutines])"
    assert advice in error["message"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()  # an unclosed coroutine would warn that it was never awaited
    assert caught == []


@pytest.mark.filterwarnings("ignore:coroutine '_doubled' was never awaited")  # asyncio's way
def test_asyncio_wait_over_coroutines_is_refused_by_asyncio_itself():
    async def waits(ctx):
        await asyncio.wait([hostile._doubled(ctx, 1)])

    error = failure(Recorder(waits).activate())
    assert error["message"] == "Passing coroutines is forbidden, use tasks explicitly."
    gc.collect()


@pytest.mark.parametrize("order", [(1, 2, 3, 4, 5, 6), (6, 4, 2, 5, 3, 1), (3, 6, 1, 4, 2, 5)])
def test_as_completed_over_tasks_and_futures_replays_identically(order):
    rec = Recorder(hostile.as_completed_futures, n=3)
    scheduled = rec.activate()
    # Activity futures are scheduled at the call; the tasks' activities when they first run.
    assert [(c.command_seq, c.name, c.data["args"]) for c in scheduled] == [
        (1, "testapp.add", [0, 0]),
        (2, "testapp.add", [1, 1]),
        (3, "testapp.add", [2, 2]),
        (4, "testapp.async_double", [0]),
        (5, "testapp.async_double", [1]),
        (6, "testapp.async_double", [2]),
    ]
    for seq in order:  # one completion per workflow task, in the given order
        commands = rec.activate(done(seq, f"r{seq}"))
    [end] = commands
    assert end.data["result"] == [f"r{seq}" for seq in order]
    for _ in range(20):  # any memory layout: the same tasks, the same order
        assert rec.replayed().completion == end


def test_as_completed_over_child_handles_follows_their_completion():
    async def children(ctx):
        handles = [ctx.start_workflow("testapp.add_twice", a=i, b=i) for i in range(3)]
        return [await f for f in asyncio.as_completed(handles)]

    rec = Recorder(children)
    assert [c.kind for c in rec.activate()] == [K.CHILD_WORKFLOW_STARTED] * 3
    ended = [
        Event(K.CHILD_WORKFLOW_ENDED, seq, data={"status": "completed", "result": seq})
        for seq in (3, 1, 2)
    ]
    [end] = rec.activate(*ended)
    assert end.data["result"] == [3, 1, 2]
    assert rec.replayed().completion == end


def test_gather_over_coroutines_keeps_call_order():
    async def gathered(ctx):
        return await asyncio.gather(*(hostile._doubled(ctx, i) for i in range(3)))

    rec = Recorder(gathered)
    assert [c.data["args"] for c in rec.activate()] == [[0], [1], [2]]
    [end] = rec.activate(done(3, 4), done(1, 0), done(2, 2))
    assert end.data["result"] == [0, 2, 4]
    assert rec.replayed().completion == end


# -- canceled timers -------------------------------------------------------------------------


async def signal_first(ctx):
    got = await ctx.wait_signal("s", timeout=30)
    await ctx.sleep(100)
    return got


async def activity_first(ctx):
    added = await asyncio.wait_for(ctx.run_activity("testapp.add", 1, 2), timeout=30)
    await ctx.sleep(100)
    return added


async def sleep_canceled(ctx):
    napper = asyncio.ensure_future(asyncio.sleep(30))
    added = await ctx.run_activity("testapp.add", 1, 2)
    napper.cancel()
    await ctx.sleep(100)
    return added


@pytest.mark.parametrize(
    ("workflow", "answer", "result"),
    [
        (signal_first, signal("s", "early"), "early"),
        (activity_first, done(1, 3), 3),
        (sleep_canceled, done(1, 3), 3),
    ],
)
def test_timer_canceled_early_is_no_longer_waited_for(workflow, answer, result):
    rec = Recorder(workflow)
    [first_timer] = [c for c in rec.activate() if c.kind == K.TIMER_STARTED]
    assert rec.instance.timers == {first_timer.command_seq: T0 + 30}
    [sleep] = rec.activate(answer, at=T0 + 1)
    assert rec.instance.timers == {sleep.command_seq: T0 + 101}  # the canceled one is gone
    assert rec.instance.waiting_on() == "1 timer(s)"
    [end] = rec.activate(fired(sleep.command_seq), at=T0 + 101)
    assert end.data["result"] == result
    assert rec.replayed().completion == end


def test_ctx_sleep_canceled_by_wait_for_drops_its_timer():
    async def bounded(ctx):
        try:
            await asyncio.wait_for(ctx.sleep(1000), timeout=10)
        except TimeoutError:
            return "gave up"

    rec = Recorder(bounded)
    assert [(c.command_seq, c.data["duration"]) for c in rec.activate()] == [(1, 1000), (2, 10)]
    [end] = rec.activate(fired(2), at=T0 + 10)
    assert end.data["result"] == "gave up"
    assert rec.instance.timers == {}


def test_history_that_fired_a_canceled_timer_still_replays():
    """Histories recorded before the fix hold a `timer_fired` for each canceled timer."""
    rec = Recorder(signal_first)
    rec.activate()
    rec.activate(signal("s", "early"), at=T0 + 1)
    rec.activate(fired(1), at=T0 + 30)  # what the engine used to deliver
    [end] = rec.activate(fired(2), at=T0 + 101)
    assert end.data["result"] == "early"
    assert rec.replayed().completion == end


# -- BaseException from workflow code --------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "error_type", "message"),
    [
        ("system_exit", "builtins.SystemExit", "3"),
        ("keyboard_interrupt", "builtins.KeyboardInterrupt", "pressed"),
        ("custom", "tests.testapp.runtime_hostile.Boom", "bang"),
    ],
)
@pytest.mark.parametrize("where", ["workflow", "task", "gather", "reraised", "plain"])
def test_base_exception_fails_the_execution_and_never_escapes(how, error_type, message, where):
    if where == "plain":
        rec = Recorder(hostile.plain_raises_base_exception, how=how)
    else:
        rec = Recorder(hostile.raises_base_exception, how=how, where=where)
    rec.activate()
    commands = rec.activate(fired(1), at=T0 + 1)
    if where == "reraised":  # its clean-up activity first
        assert [c.kind for c in commands] == [K.ACTIVITY_SCHEDULED]
        commands = rec.activate(done(2, 2))
    error = failure(commands)
    assert (error["type"], error["message"]) == (error_type, message)
    assert "_raise(how)" in error["traceback"]
    assert rec.replayed().completion == commands[-1]


def test_workflow_may_catch_system_exit_of_a_task_it_awaits():
    [end] = Recorder(hostile.catches_system_exit).activate()
    assert end.data["result"] == "caught SystemExit(4)"


def test_cancellation_still_ends_the_workflow_canceled():
    async def waiting(ctx):
        await ctx.wait_signal("never")

    rec = Recorder(waiting)
    rec.activate()
    [end] = rec.activate(Event(K.CANCEL_REQUESTED, data={"reason": "stop"}))
    assert end.kind == K.WORKFLOW_CANCELED


# -- what cannot be stored -------------------------------------------------------------------


@pytest.mark.parametrize("what", ["object", "set", "nan"])
def test_unstorable_result_fails_with_a_payload_error(what):
    error = failure(Recorder(hostile.returns_unstorable, what=what).activate())
    assert error["type"] == "django_durable.exceptions.PayloadError"
    assert error["message"].startswith("The workflow's result ")


@pytest.mark.parametrize(
    ("how", "error_type", "message"),
    [
        ("unprintable", "UnprintableError", "str() failed"),
        ("unpicklable", "UnpicklableArgsError", "<function"),
    ],
)
def test_strange_exception_still_fails_cleanly(how, error_type, message):
    error = failure(Recorder(hostile.raises_strange_error, how=how).activate())
    assert error["type"] == f"tests.testapp.runtime_hostile.{error_type}"
    assert message in error["message"]
