"""G10: suspended workflows resume from memory; a full replay after eviction agrees."""

import pytest
from asgiref.sync import sync_to_async

from django_durable import start_workflow
from django_durable.engine.inline import InlineRunner
from django_durable.engine.sticky import StickyCache
from django_durable.models import HistoryEvent

pytestmark = pytest.mark.django_db(transaction=True)

STEPS = 30


def history_of(execution_id):
    return list(
        HistoryEvent.objects.filter(execution_id=execution_id).values_list(
            "sequence", "kind", "command_seq", "name"
        )
    )


async def run(cache):
    execution_id = await start_workflow("testapp.many_steps", steps=STEPS)
    execution = await InlineRunner(execution_id, cache=cache).run()
    return execution_id, execution.result


async def test_cached_workflow_is_resumed_not_replayed():
    cache = StickyCache(size=10)
    _, result = await run(cache)
    assert result == sum(range(STEPS))
    # One replay (the first task builds the instance), then one resume per activity.
    assert (cache.misses, cache.hits) == (1, STEPS)


async def test_without_cache_every_task_replays_with_the_same_outcome():
    cached_id, cached_result = await run(StickyCache(size=10))
    cache = StickyCache(size=0)
    replayed_id, replayed_result = await run(cache)
    assert (cache.misses, cache.hits) == (STEPS + 1, 0)
    assert replayed_result == cached_result
    cached_history = await sync_to_async(history_of)(cached_id)
    replayed_history = await sync_to_async(history_of)(replayed_id)
    assert replayed_history == cached_history


async def test_a_stale_cache_entry_is_dropped_for_a_replay():
    cache = StickyCache(size=10)
    execution_id = await start_workflow("testapp.many_steps", steps=3)
    runner = InlineRunner(execution_id, cache=cache)
    await runner._step()  # first workflow task: instance cached
    entry = cache._entries[execution_id]
    # As if another worker had held the lease since (each lease bumps the epoch once) and
    # advanced the history: the entry is not trusted, whatever its length says.
    entry.epoch -= 1
    entry.history_length -= 1
    execution = await runner.run()
    assert execution.result == 3
    assert cache.misses == 2  # the stale entry was not trusted
