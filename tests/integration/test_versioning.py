"""Versioning through the store: old executions keep their path while new ones take the new."""

import pytest
from asgiref.sync import async_to_sync

from django_durable import NonDeterminismError, WorkflowBlocked, register, send_signal, store
from django_durable import start_workflow as start
from django_durable.constants import EventKind, ExecutionStatus
from django_durable.engine.inline import InlineRunner
from django_durable.engine.sticky import StickyCache
from django_durable.models import HistoryEvent, WorkflowExecution
from django_durable.registry import WorkflowDefinition
from django_durable.testing import replay
from tests.testapp.models import Effect

pytestmark = pytest.mark.django_db(transaction=True)

ORDER = "tests.versioned_order"
FEE = "tests.versioned_fee"


@register.workflow(name=ORDER)
async def order_v1(ctx, order_id: int) -> dict:
    await ctx.run_activity("testapp.record_effect", f"charge-{order_id}")
    await ctx.wait_signal("ship")
    return {"path": "old"}


async def order_v2(ctx, order_id: int) -> dict:
    await ctx.run_activity("testapp.record_effect", f"charge-{order_id}")
    path = "old"
    if ctx.patched("v2-receipt"):
        await ctx.run_activity("testapp.record_effect", f"receipt-{order_id}")
        path = "new"
    await ctx.wait_signal("ship")
    return {"path": path}


@register.workflow(name=FEE)
def fee_v1(ctx, amount: int) -> dict:
    ctx.wait_signal("pay")
    return {"fee": 0}


def fee_v2(ctx, amount: int) -> dict:
    version = ctx.get_version("fee", ctx.DEFAULT_VERSION, 1)
    ctx.wait_signal("pay")
    return {"fee": 0 if version == ctx.DEFAULT_VERSION else ctx.run_activity("testapp.add", 1, 0)}


def fee_v3(ctx, amount: int) -> dict:  # drops the version without a fee
    ctx.get_version("fee", 1, 1)
    ctx.wait_signal("pay")
    return {"fee": ctx.run_activity("testapp.add", 1, 0)}


def deploy(monkeypatch, name, fn, is_async=True):
    monkeypatch.setitem(register.workflows, name, WorkflowDefinition(name, fn, is_async))


def drive(execution_id) -> WorkflowExecution | None:
    """Run the execution as far as it goes, replaying its whole history at every task."""
    try:
        return async_to_sync(InlineRunner(execution_id, cache=StickyCache(0)).run)()
    except WorkflowBlocked:
        return None  # waits for a signal


def markers(execution_id) -> list[tuple]:
    return list(
        HistoryEvent.objects.filter(
            execution_id=execution_id, kind=EventKind.MARKER_RECORDED
        ).values_list("command_seq", "name", "data")
    )


def test_old_execution_keeps_the_old_path_while_a_new_one_takes_the_new(monkeypatch):
    old = start(ORDER, order_id=1)
    assert drive(old) is None  # charged, waiting for "ship" under the old code
    deploy(monkeypatch, ORDER, order_v2)
    new = start(ORDER, order_id=2)
    assert drive(new) is None
    send_signal(old, "ship")
    send_signal(new, "ship")
    assert drive(old).result == {"path": "old"}
    assert drive(new).result == {"path": "new"}
    assert sorted(Effect.objects.values_list("name", flat=True)) == [
        "charge-1",
        "charge-2",
        "receipt-2",
    ]
    assert markers(old) == []
    assert markers(new) == [(2, "v2-receipt", {"kind": "patch", "deprecated": False})]
    assert replay(old).result == {"path": "old"}  # both histories replay with the new code
    assert replay(new).result == {"path": "new"}


def test_rolling_back_parks_executions_that_took_the_new_path(monkeypatch):
    deploy(monkeypatch, ORDER, order_v2)
    execution_id = start(ORDER, order_id=3)
    drive(execution_id)
    deploy(monkeypatch, ORDER, order_v1)
    send_signal(execution_id, "ship")
    execution = drive(execution_id)
    assert execution.status == ExecutionStatus.BLOCKED
    assert "history expects marker recorded 'v2-receipt'" in execution.error["message"]
    with pytest.raises(NonDeterminismError, match=r"no longer calls ctx\.patched"):
        replay(execution_id)


def test_get_version_splits_old_and_new_executions_and_parks_unsupported_ones(monkeypatch):
    old = start(FEE, amount=10)
    assert drive(old) is None
    deploy(monkeypatch, FEE, fee_v2, is_async=False)
    new = start(FEE, amount=10)
    assert drive(new) is None
    assert markers(new) == [(1, "fee", {"kind": "version", "version": 1})]
    send_signal(new, "pay")
    assert drive(new).result == {"fee": 1}
    deploy(monkeypatch, FEE, fee_v3, is_async=False)
    send_signal(old, "pay")
    parked = drive(old)
    assert parked.status == ExecutionStatus.BLOCKED
    assert "get_version('fee') found no marker, so version -1" in parked.error["message"]
    assert "[1, 1]" in parked.error["message"]
    deploy(monkeypatch, FEE, fee_v2, is_async=False)  # compatible code again: it goes on
    assert store.unpark_executions() == 1
    assert drive(old).result == {"fee": 0}
