"""Transactional activities: database effects exactly once, whatever kill -9 does."""

import random
import time

import pytest

from django_durable import run_workflow, start_workflow, wait_workflow
from django_durable.models import ActivityTask
from tests.testapp.models import Effect

from .conftest import wait_until


def test_effects_exist_exactly_once_after_kill_9_cycles(start_worker, tmp_path, monkeypatch):
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("DURABLE_TEST_MARKERS", str(markers))
    execution_id = start_workflow("testapp.transactional_steps", steps=3, seconds=1.0)
    rng = random.Random(7)
    for cycle in range(3):
        worker = start_worker("--procs", "1")
        # Wait until an activity body is inside its transaction, then kill mid-way.
        wait_until(lambda n=cycle: len(list(markers.iterdir())) > n, timeout=30)
        time.sleep(rng.uniform(0.2, 0.6))
        worker.kill_group()
    start_worker("--procs", "1")
    assert wait_workflow(execution_id, timeout=90) == [1, 1, 1]
    for step in range(3):
        assert Effect.objects.filter(name=f"tx-{step}").count() == 1
    # The killed attempts were retried: at least three bodies ran and rolled back.
    assert len(list(markers.iterdir())) >= 6
    assert sum(ActivityTask.objects.values_list("attempt", flat=True)) >= 6


@pytest.mark.django_db(transaction=True)
def test_transactional_activity_inline():
    assert run_workflow("testapp.transactional_steps", steps=2, seconds=0) == [1, 1]
