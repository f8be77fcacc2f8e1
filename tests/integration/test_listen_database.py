"""DURABLE["LISTEN_DATABASE"]: the worker's LISTEN connection may go elsewhere than its
queries (PostgreSQL itself, past a transaction-mode pooler), and a bad value is refused by
a system check that never repeats it (a connection string may hold a password)."""

import asyncio

import psycopg
import pytest
from django.db import connections
from django.test import override_settings

from django_durable import start_workflow
from django_durable.checks import check_durable_settings
from django_durable.engine.listener import Listener, conninfo_for, listen_conninfo
from django_durable.store.db import alias

ON_POSTGRESQL = connections["default"].vendor == "postgresql"


def parsed(conninfo: str) -> dict:
    return psycopg.conninfo.conninfo_to_dict(conninfo)


def errors_of(durable: dict) -> list:
    with override_settings(DURABLE=durable):
        return [error for error in check_durable_settings() if error.id == "django_durable.E009"]


postgres_only = pytest.mark.skipif(not ON_POSTGRESQL, reason="LISTEN is PostgreSQL's")


@postgres_only
def test_by_default_it_listens_on_the_engines_own_database():
    assert listen_conninfo() == conninfo_for(alias())


def test_a_url_is_used_as_given_with_the_listeners_name():
    url = "postgresql://listener:secret@db-direct.example:6432/shop?sslmode=require"
    with override_settings(DURABLE={"LISTEN_DATABASE": url}):
        params = parsed(listen_conninfo())
    assert params["host"] == "db-direct.example"
    assert params["port"] == "6432"
    assert params["dbname"] == "shop"
    assert params["user"] == "listener"
    assert params["sslmode"] == "require"
    assert params["application_name"].startswith("django_durable listener ")


@postgres_only
def test_an_alias_of_databases_is_read_from_its_settings(monkeypatch, settings):
    direct = {**connections["default"].settings_dict, "HOST": "db-direct.example"}
    monkeypatch.setitem(settings.DATABASES, "direct", direct)
    monkeypatch.setitem(connections.settings, "direct", direct)
    settings.DURABLE = {"LISTEN_DATABASE": "direct"}
    try:
        params = parsed(listen_conninfo())
    finally:
        del connections["direct"]
    assert params["host"] == "db-direct.example"


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "must be an alias of DATABASES or a libpq string"),
        (5432, "must be an alias of DATABASES or a libpq string"),
        ("host=db password='secret", "neither an alias of DATABASES nor a connection string"),
    ],
)
def test_a_bad_value_is_refused_without_repeating_it(value, message):
    [error] = errors_of({"LISTEN_DATABASE": value})
    assert message in error.msg
    assert "secret" not in error.msg


def test_a_good_value_passes_the_check():
    assert errors_of({"LISTEN_DATABASE": "postgresql://u:p@h/db"}) == []
    assert errors_of({}) == []


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_listener_on_a_url_is_woken_by_a_start():
    settings_dict = connections["default"].settings_dict
    url = (
        f"postgresql://{settings_dict['USER']}@{settings_dict['HOST'] or 'localhost'}:"
        f"{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}"
    )

    async def woken() -> bool:
        wake = asyncio.Event()
        with override_settings(DURABLE={"LISTEN_DATABASE": url}):
            listener = Listener(listen_conninfo(), wake)
        running = asyncio.create_task(listener.run())
        try:
            await asyncio.wait_for(listener.connected.wait(), 10)
            wake.clear()
            listener.take_kinds()
            await start_workflow("testapp.add_twice", a=1, b=2)
            await asyncio.wait_for(wake.wait(), 10)
            return "workflow" in listener.take_kinds()
        finally:
            running.cancel()

    assert asyncio.run(woken())
