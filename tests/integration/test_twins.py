"""Store twins run in the ORM thread by default and on a worker's database threads when set."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from django_durable import store
from django_durable.models import WorkflowExecution
from django_durable.store.twins import async_twin

pytestmark = pytest.mark.django_db(transaction=True)

thread_name = async_twin(lambda: threading.current_thread().name)


async def test_twins_use_the_database_threads_of_their_context():
    assert not (await thread_name()).startswith("durable-db")
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="durable-db")

    async def in_worker_context():
        store.use_database_threads(executor)
        execution_id, _ = await store.astart_execution("testapp.add_twice", {"a": 1, "b": 1})
        return await thread_name(), execution_id

    name, execution_id = await asyncio.create_task(in_worker_context())
    assert name.startswith("durable-db")
    assert await WorkflowExecution.objects.filter(pk=execution_id).aexists()
    assert not (await thread_name()).startswith("durable-db")  # the caller's context is intact
    executor.submit(connections.close_all).result()  # so the test database can be dropped
    executor.shutdown()
