"""The runtime on plain lists of events: no database, no worker."""

import asyncio
import uuid

import pytest

from django_durable import ActivityError, NonDeterminismError
from django_durable.constants import EventKind as K
from django_durable.registry import WorkflowDefinition
from django_durable.runtime import Event, WorkflowInfo, WorkflowInstance, replay

T0 = 1_700_000_000.0


def task(at: float = T0) -> Event:
    return Event(K.WORKFLOW_TASK_STARTED, data={"time": at})


def done(seq: int, result, name: str = "testapp.add") -> Event:
    return Event(K.ACTIVITY_COMPLETED, seq, name, {"result": result})


def definition(fn) -> WorkflowDefinition:
    return WorkflowDefinition("tests.wf", fn, asyncio.iscoroutinefunction(fn))


INFO = WorkflowInfo(execution_id=uuid.UUID(int=7), workflow_name="tests.wf")


class Recorder:
    """Drives an instance like the engine does and keeps the history it would store."""

    def __init__(self, fn, **inputs):
        self.definition = definition(fn)
        self.inputs = inputs
        self.instance = WorkflowInstance(self.definition, INFO, inputs)
        self.history = [Event(K.WORKFLOW_STARTED, data={"input": inputs})]

    def activate(self, *inputs: Event, at: float = T0) -> list[Event]:
        events = [task(at), *inputs]
        commands = self.instance.activate(events)
        self.history += events + commands
        return commands

    def replayed(self, fn=None) -> WorkflowInstance:
        target = definition(fn) if fn else self.definition
        return replay(target, INFO, self.inputs, self.history)


async def gather_three(ctx):
    return list(await asyncio.gather(*(ctx.run_activity("testapp.add", i, i) for i in range(3))))


@pytest.mark.parametrize("order", [(1, 2, 3), (3, 1, 2), (2, 3, 1)])
def test_gather_completes_in_any_order_and_replays_identically(order):
    rec = Recorder(gather_three)
    scheduled = rec.activate()
    assert [(c.kind, c.command_seq, c.name) for c in scheduled] == [
        (K.ACTIVITY_SCHEDULED, seq, "testapp.add") for seq in (1, 2, 3)
    ]
    for seq in order:  # one completion per workflow task, in the given order
        commands = rec.activate(done(seq, f"r{seq}"))
    assert commands == [Event(K.WORKFLOW_COMPLETED, data={"result": ["r1", "r2", "r3"]})]
    again = rec.replayed()
    assert again.done and again.completion == commands[0]


def test_changed_activity_name_is_detected_on_replay():
    async def original(ctx):
        return await ctx.run_activity("testapp.add", 1, 2)

    async def renamed(ctx):
        return await ctx.run_activity("testapp.async_double", 1)

    rec = Recorder(original)
    rec.activate()
    with pytest.raises(NonDeterminismError) as caught:
        rec.replayed(renamed)
    message = str(caught.value)
    assert "activity scheduled 'testapp.add' (command #1)" in message
    assert "activity scheduled 'testapp.async_double' (command #1)" in message
    # The admin shows them side by side: what history expected, what the code issued.
    assert caught.value.expected == "activity scheduled 'testapp.add' (command #1)"
    assert caught.value.found == "activity scheduled 'testapp.async_double' (command #1)"


def test_removed_command_is_detected_on_replay():
    async def two_steps(ctx):
        await ctx.run_activity("testapp.add", 1, 2)
        await ctx.sleep(5)

    async def one_step(ctx):
        await ctx.run_activity("testapp.add", 1, 2)

    rec = Recorder(two_steps)
    rec.activate()
    rec.activate(done(1, 3))
    with pytest.raises(NonDeterminismError, match="timer started"):
        rec.replayed(one_step)


def test_outcome_for_a_command_never_issued_is_detected():
    async def nothing(ctx):
        await ctx.wait_signal("x")

    rec = Recorder(nothing)
    rec.activate()
    with pytest.raises(NonDeterminismError, match="never scheduled"):
        rec.instance.activate([task(), done(9, 1)])


def test_workflow_that_raises_fails_with_its_traceback():
    async def broken(ctx):
        raise RuntimeError("kaput")

    [end] = Recorder(broken).activate()
    assert end.kind == K.WORKFLOW_FAILED
    error = end.data["error"]
    assert error["type"] == "builtins.RuntimeError"
    assert error["message"] == "kaput"
    assert 'raise RuntimeError("kaput")' in error["traceback"]


def test_activity_failure_reaches_workflow_as_activity_error():
    async def catcher(ctx):
        try:
            await ctx.run_activity("testapp.explode", "x")
        except ActivityError as exc:
            return [exc.activity_name, exc.error_type, exc.message]

    rec = Recorder(catcher)
    rec.activate()
    failed = Event(
        K.ACTIVITY_FAILED,
        1,
        "testapp.explode",
        {"error": {"type": "builtins.ValueError", "message": "x", "traceback": "tb"}},
    )
    [end] = rec.activate(failed)
    assert end.data["result"] == ["testapp.explode", "builtins.ValueError", "x"]


def test_plain_def_workflow_blocks_without_await():
    def plain(ctx, n):
        first = ctx.run_activity("testapp.add", n, n)
        ctx.sleep(10)
        return first * 10

    rec = Recorder(plain, n=2)
    [scheduled] = rec.activate()
    assert scheduled.kind == K.ACTIVITY_SCHEDULED
    [timer] = rec.activate(done(1, 4))
    assert timer.kind == K.TIMER_STARTED and timer.data["fire_at"] == T0 + 10
    assert rec.instance.timers == {2: T0 + 10}
    [end] = rec.activate(Event(K.TIMER_FIRED, 2), at=T0 + 10)
    assert end.data == {"result": 40}
    assert rec.replayed().completion == end


def test_time_random_and_uuid_replay_identically():
    async def values(ctx):
        await ctx.sleep(1)
        return [ctx.now().timestamp(), ctx.random().random(), str(ctx.uuid4())]

    rec = Recorder(values)
    rec.activate(at=T0)
    [end] = rec.activate(Event(K.TIMER_FIRED, 1), at=T0 + 3)
    assert end.data["result"][0] == T0 + 3
    assert rec.replayed().completion == end


def test_signals_of_one_name_arrive_in_order_and_buffer():
    async def two(ctx):
        await ctx.sleep(1)
        return [await ctx.wait_signal("s"), await ctx.wait_signal("s")]

    rec = Recorder(two)
    rec.activate()
    sig = [Event(K.SIGNAL_RECEIVED, name="s", data={"payload": p}) for p in ("a", "b")]
    [end] = rec.activate(*sig, Event(K.TIMER_FIRED, 1))
    assert end.data["result"] == ["a", "b"]


def test_wait_signal_timeout_returns_none():
    async def patient(ctx):
        return await ctx.wait_signal("s", timeout=30)

    rec = Recorder(patient)
    [timer] = rec.activate()
    assert timer.kind == K.TIMER_STARTED
    [end] = rec.activate(Event(K.TIMER_FIRED, 1), at=T0 + 30)
    assert end.data["result"] is None


def test_cancel_reaches_the_workflow_which_may_clean_up():
    async def cleaning(ctx):
        try:
            await ctx.wait_signal("never")
        except asyncio.CancelledError:
            await ctx.run_activity("testapp.add", 0, 0)
            raise

    rec = Recorder(cleaning)
    rec.activate()
    [cleanup] = rec.activate(Event(K.CANCEL_REQUESTED, data={"reason": "stop"}))
    assert cleanup.kind == K.ACTIVITY_SCHEDULED
    [end] = rec.activate(done(1, 0))
    assert end.kind == K.WORKFLOW_CANCELED
    assert rec.replayed().completion == end


def test_non_json_result_fails_the_workflow_clearly():
    async def setty(ctx):
        return {1, 2}

    [end] = Recorder(setty).activate()
    assert end.kind == K.WORKFLOW_FAILED
    assert "The workflow's result must be JSON-serializable" in end.data["error"]["message"]


def test_non_json_activity_argument_raises_inside_workflow():
    async def bad_args(ctx):
        await ctx.run_activity("testapp.add", object(), 1)

    [end] = Recorder(bad_args).activate()
    assert end.kind == K.WORKFLOW_FAILED
    assert end.data["error"]["type"] == "django_durable.exceptions.PayloadError"


def test_unknown_activity_fails_with_suggestion():
    async def typo(ctx):
        await ctx.run_activity("testapp.ad", 1, 1)

    [end] = Recorder(typo).activate()
    assert "Did you mean 'testapp.add'" in end.data["error"]["message"]


def test_running_loop_of_caller_is_restored():
    async def outer():
        loop = asyncio.get_running_loop()
        Recorder(gather_three).activate()
        assert asyncio.get_running_loop() is loop

    asyncio.run(outer())


async def first_of_two(ctx):
    first = asyncio.ensure_future(ctx.run_activity("testapp.add", 1, 1))
    second = asyncio.ensure_future(ctx.run_activity("testapp.add", 2, 2))
    finished, _ = await asyncio.wait({second, first}, return_when=asyncio.FIRST_COMPLETED)
    order = [await task for task in finished]
    for task in asyncio.as_completed([first, second]):
        order.append(await task)
    return order


def test_asyncio_wait_and_as_completed_replay_identically():
    rec = Recorder(first_of_two)
    rec.activate()
    rec.activate(done(2, 4), done(1, 2))  # both finish in one workflow task
    end = rec.instance.completion
    assert end.kind == K.WORKFLOW_COMPLETED
    for _ in range(20):  # any memory layout: the same sets, the same order
        assert rec.replayed().completion == end


def test_workflow_futures_hash_by_creation_order():
    from django_durable.runtime.loop import WorkflowLoop

    loop = WorkflowLoop(lambda *args: None)
    futures = [loop.create_future() for _ in range(50)]
    assert [hash(f) for f in futures] == list(range(1, 51))
    assert list(set(futures)) == futures


def test_a_call_may_run_an_activity_on_another_queue():
    async def routed(ctx):
        await ctx.run_activity("testapp.add", 1, 2)
        await ctx.run_activity("testapp.add", 3, 4, queue="emails")

    rec = Recorder(routed)
    [first] = rec.activate()
    [second] = rec.activate(done(1, 3))
    assert first.data["queue"] == "default"  # the activity's own
    assert second.data["queue"] == "emails"
    assert second.data["kwargs"] == {}  # an option, not an argument of the activity
    rec.replayed()  # the queue is not compared on replay: a routing change is compatible


@pytest.mark.parametrize(
    "queue, error",
    [
        (7, "builtins.TypeError: queue must be a string, not int."),
        ("", "builtins.ValueError: queue must be 1 to 100 characters long, not 0."),
        ("q" * 101, "builtins.ValueError: queue must be 1 to 100 characters long, not 101."),
    ],
)
def test_a_bad_queue_fails_the_call(queue, error):
    async def routed(ctx):
        await ctx.run_activity("testapp.add", 1, 2, queue=queue)

    [failed] = Recorder(routed).activate()
    assert failed.kind == K.WORKFLOW_FAILED
    assert f"{failed.data['error']['type']}: {failed.data['error']['message']}" == error
