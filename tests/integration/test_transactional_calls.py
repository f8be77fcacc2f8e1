"""Calls made inside the caller's `transaction.atomic()` commit or roll back with it.

`start_workflow`, `send_signal` and `cancel_workflow` write through the caller's connection:
inside its transaction they are part of it, NOTIFY included (PostgreSQL delivers a NOTIFY
when its transaction commits, and drops it on rollback). So an order saved and its workflow
started in one transaction exist together or not at all, and no worker is woken for work
that was never committed.
"""

import pytest
from django.db import transaction

from django_durable import cancel_workflow, send_signal, start_workflow
from django_durable.models import HistoryEvent, PendingSignal, WorkflowExecution

pytestmark = pytest.mark.django_db(transaction=True)


class Rollback(Exception):
    """Raised to leave an atomic block the way an error in the caller's code would."""


def test_a_start_commits_with_the_callers_transaction(notifications):
    with transaction.atomic():
        execution_id = start_workflow("testapp.add_twice", a=1, b=2)
        assert notifications() == []  # not before the caller commits
    assert notifications() == [f"workflow:{execution_id}"]
    assert WorkflowExecution.objects.filter(pk=execution_id).exists()


def test_a_start_rolls_back_with_the_callers_transaction(notifications):
    with pytest.raises(Rollback), transaction.atomic():
        start_workflow("testapp.add_twice", a=1, b=2)
        raise Rollback
    assert notifications() == []
    assert not WorkflowExecution.objects.exists()
    assert not HistoryEvent.objects.exists()


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_start_signal_and_cancel_share_the_callers_fate(outcome):
    """Rows, on SQLite and PostgreSQL: all three calls land or none does."""
    waiting = start_workflow("testapp.collect_signals", count=2)
    cancelable = start_workflow("testapp.collect_signals", count=1)
    try:
        with transaction.atomic():
            started = start_workflow("testapp.add_twice", a=1, b=2)
            send_signal(waiting, "item", {"n": 1})
            cancel_workflow(cancelable, "changed my mind")
            if outcome == "rollback":
                raise Rollback
    except Rollback:
        pass
    committed = outcome == "commit"
    assert WorkflowExecution.objects.filter(pk=started).exists() is committed
    assert PendingSignal.objects.filter(execution=waiting).exists() is committed
    assert WorkflowExecution.objects.get(pk=cancelable).cancel_requested is committed


def test_a_signal_and_a_cancel_wake_workers_only_once_committed(notifications):
    waiting = start_workflow("testapp.collect_signals", count=2)
    cancelable = start_workflow("testapp.collect_signals", count=1)
    notifications()
    with pytest.raises(Rollback), transaction.atomic():
        send_signal(waiting, "item", 1)
        cancel_workflow(cancelable)
        raise Rollback
    assert notifications() == []
    with transaction.atomic():
        send_signal(waiting, "item", 1)
        cancel_workflow(cancelable)
        assert notifications() == []
    assert sorted(notifications()) == sorted([f"workflow:{waiting}", f"workflow:{cancelable}"])
