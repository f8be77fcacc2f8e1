import pytest

from tests.testapp.durable_activities import CALLS


@pytest.fixture(autouse=True)
def reset_calls():
    CALLS.clear()
    yield
