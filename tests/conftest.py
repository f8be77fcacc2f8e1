import pytest
from asgiref.sync import SyncToAsync
from django.db import connections

from tests.testapp.durable_activities import CALLS


@pytest.fixture(autouse=True)
def reset_calls():
    CALLS.clear()
    yield


@pytest.fixture(autouse=True)
def close_async_orm_connections():
    """Close the connections the async ORM opened in its thread, so the test DB can be dropped."""
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()
