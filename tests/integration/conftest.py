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


@pytest.fixture
def notifications():
    """A function returning the NOTIFY payloads sent on the engine's channel since its last
    call (PostgreSQL only: elsewhere the test is skipped)."""
    from django.db import connections

    from django_durable.store.db import alias

    if connections[alias()].vendor != "postgresql":
        pytest.skip("NOTIFY is PostgreSQL's")
    import psycopg
    from psycopg import sql

    from django_durable.conf import durable_setting
    from django_durable.engine.listener import conninfo_for

    listener = psycopg.connect(conninfo_for(alias()), autocommit=True)
    listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(durable_setting("CHANNEL"))))

    def received() -> list[str]:
        return [note.payload for note in listener.notifies(timeout=0.3)]

    yield received
    listener.close()
