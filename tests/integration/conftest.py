import pytest

from django_durable.engine.inline import InlineRunner


@pytest.fixture
def drive():
    """Run an already started execution inline to its end (or its next stall)."""
    from asgiref.sync import async_to_sync

    def run(execution_id):
        return async_to_sync(InlineRunner(execution_id).run)()

    return run


@pytest.fixture
def adrive():
    async def run(execution_id):
        return await InlineRunner(execution_id).run()

    return run
