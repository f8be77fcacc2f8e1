"""The console costs the same number of queries with 10 executions as with 100,000: each
page's queries are counted at both sizes (no query per row), and no count reads the whole
executions table (every COUNT is over a LIMITed subquery)."""

import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_durable.constants import ActivityStatus
from django_durable.models import ActivityTask, HistoryEvent, WorkflowExecution
from tests.integration.test_admin import create_live_worker

pytestmark = pytest.mark.django_db  # one transaction, rolled back: no flush of 400,000 rows

SMALL, LARGE = 10, 100_000
EVENTS_PER_EXECUTION = 3

# Queries per page, savepoints aside. Every page: the session and the user (2); beyond that:
EXPECTED_QUERIES = {
    # live workers, counts by status (one statement), the capped count, the page of rows,
    # the open attempts of the running rows shown
    "list": 7,
    "list: running": 7,
    "search: execution id": 7,
    "search: workflow name prefix": 7,
    # live workers and the execution, its retries, its open attempts, the timeline (count,
    # page, partners on other pages), its activity tasks, its children
    "execution page": 11,
    # the capped count and the page of rows
    "activity tasks": 4,
    "history events": 4,
}


def execution_id(n: int) -> uuid.UUID:
    """The id of the n-th generated execution: UUID(int=n), the same on both databases."""
    return uuid.UUID(int=n)


def _sql(vendor: str) -> dict[str, str]:
    """The vendor's spelling of what the INSERT ... SELECT statements need."""
    if vendor == "postgresql":
        return {
            "series": "generate_series(%s, %s - 1) AS series(i)",
            "with": "",
            "id": "lpad(to_hex(i), 32, '0')::uuid",
            "created": "%s::timestamptz - i * interval '1 second'",
            "json": "CAST(%s AS jsonb)",
            "input": "jsonb_build_object('n', i)",
            "result": "to_jsonb(i)",
            "event_at": "%s::timestamptz - i * interval '1 second' + seq * interval '1 ms'",
        }
    return {
        "series": "series",
        "with": "WITH RECURSIVE series(i) AS (SELECT %s UNION ALL SELECT i + 1 FROM series "
        "WHERE i + 1 < %s) ",
        "id": "printf('%%032x', i)",
        "created": "strftime('%%Y-%%m-%%d %%H:%%M:%%f', %s, '-' || i || ' seconds')",
        "json": "%s",
        "input": "json_object('n', i)",
        "result": "CAST(i AS TEXT)",
        "event_at": "strftime('%%Y-%%m-%%d %%H:%%M:%%f', %s, '-' || i || ' seconds', "
        "'+' || (seq / 1000.0) || ' seconds')",
    }


def insert_executions(first: int, stop: int, base) -> None:
    """Executions `first` to `stop - 1` (created a second apart before `base`, newest first:
    a quarter each running and waiting for a signal, completed, failed, canceled) with
    three history events each, in two INSERT ... SELECT statements."""
    sql = _sql(connection.vendor)
    when = base if connection.vendor == "postgresql" else base.strftime("%Y-%m-%d %H:%M:%S.%f")
    series = [first, stop] if connection.vendor == "postgresql" else []
    with_series = [] if connection.vendor == "postgresql" else [first, stop]
    status = (
        "CASE i %% 4 WHEN 0 THEN 'running' WHEN 1 THEN 'completed' WHEN 2 THEN 'failed' "
        "ELSE 'canceled' END"
    )
    columns = {  # column: (expression, its parameters)
        "id": (sql["id"], []),
        "workflow_name": (
            "CASE WHEN i %% 4 = 0 THEN 'testapp.collect_signals' ELSE 'testapp.add_twice' END",
            [],
        ),
        "workflow_id": ("'order-' || i", []),
        "input": (sql["input"], []),
        "status": (status, []),
        "result": (f"CASE WHEN i %% 4 = 1 THEN {sql['result']} END", []),
        "error": (
            f"CASE WHEN i %% 4 = 2 THEN {sql['json']} END",
            ['{"type": "builtins.ValueError", "message": "boom", "traceback": ""}'],
        ),
        "parent_id": ("NULL", []),
        "parent_command_seq": ("NULL", []),
        "delivered_to_parent": ("FALSE", []),
        "timeout_at": ("NULL", []),
        "created_at": (sql["created"], [when]),
        "updated_at": (sql["created"], [when]),
        "finished_at": (f"CASE WHEN i %% 4 <> 0 THEN {sql['created']} END", [when]),
        "wake_at": ("NULL", []),
        "inbox_version": ("1", []),
        "cancel_requested": ("FALSE", []),
        "cancel_reason": ("''", []),
        "lease_owner": ("''", []),
        "lease_until": ("NULL", []),
        "epoch": ("1", []),
        "waiting": (
            f"CASE WHEN i %% 4 = 0 THEN {sql['json']} ELSE {sql['json']} END",
            ['[{"kind": "signal", "name": "go"}]', "[]"],
        ),
        "retried_from_id": ("NULL", []),
    }
    model_columns = {field.column for field in WorkflowExecution._meta.concrete_fields}
    assert set(columns) == model_columns, "the generator no longer matches the model"
    table = connection.ops.quote_name(WorkflowExecution._meta.db_table)
    names = ", ".join(connection.ops.quote_name(column) for column in columns)
    expressions = ", ".join(expression for expression, _ in columns.values())
    params = [param for _, values in columns.values() for param in values]
    events = connection.ops.quote_name(HistoryEvent._meta.db_table)
    steps = (
        "(VALUES (1, 'workflow_started', NULL, ''), (2, 'activity_scheduled', 1, 'testapp.add'),"
        " (3, 'activity_completed', 1, 'testapp.add')) AS steps(seq, kind, command_seq, name)"
    )
    if connection.vendor != "postgresql":  # SQLite names a VALUES list's columns in a CTE
        sql["with"] = sql["with"] + (
            ", steps(seq, kind, command_seq, name) AS (VALUES (1, 'workflow_started', NULL, ''),"
            " (2, 'activity_scheduled', 1, 'testapp.add'),"
            " (3, 'activity_completed', 1, 'testapp.add')) "
        )
        steps = "steps"
    with connection.cursor() as cursor:
        cursor.execute(
            f"{sql['with']}INSERT INTO {table} ({names}) SELECT {expressions} FROM {sql['series']}",
            [*with_series, *params, *series],
        )
        cursor.execute(
            f"{sql['with']}INSERT INTO {events} "
            "(execution_id, sequence, kind, command_seq, name, data, created_at) "
            f"SELECT {sql['id']}, seq, kind, command_seq, name, {sql['json']}, "
            f"{sql['event_at']} FROM {sql['series']} CROSS JOIN {steps}",
            [*with_series, "{}", when, *series],
        )


def insert_the_rest() -> None:
    """A live worker that knows every name, and a few activity tasks of the newest runs."""
    now = timezone.now()
    create_live_worker()
    statuses = [ActivityStatus.QUEUED, ActivityStatus.RUNNING, ActivityStatus.FAILED]
    ActivityTask.objects.bulk_create(
        ActivityTask(
            execution_id=execution_id(n),
            command_seq=2,
            activity_name="testapp.add",
            status=statuses[n % 3],
            attempt=1,
            lease_owner="w-live" if statuses[n % 3] == ActivityStatus.RUNNING else "",
            due_at=now,
            error={"type": "builtins.ValueError", "message": "boom"} if n % 3 == 2 else None,
        )
        for n in range(1, 9)
    )


def pages() -> dict[str, str]:
    executions = reverse("admin:django_durable_workflowexecution_changelist")
    return {
        "list": executions,
        "list: running": executions + "?status__exact=running",
        "search: execution id": executions + f"?q={execution_id(8)}",
        "search: workflow name prefix": executions + "?q=testapp.coll",
        "execution page": reverse(
            "admin:django_durable_workflowexecution_change", args=[execution_id(4)]
        ),
        "activity tasks": reverse("admin:django_durable_activitytask_changelist"),
        "history events": reverse("admin:django_durable_historyevent_changelist"),
    }


def measure(client, url: str) -> tuple[list[str], str]:
    """The queries of one request for `url` (after a first request that fills the caches),
    savepoints aside, and the page."""
    assert client.get(url).status_code == 200, url
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    queries = [
        query["sql"]
        for query in captured.captured_queries
        if not re.match(r"\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b", query["sql"])
    ]
    return queries, response.content.decode()


def unbounded_counts(queries: list[str], table: str) -> list[str]:
    """The COUNTs in `queries` on `table` that are not over a subquery ending in LIMIT."""
    found = []
    for query in queries:
        if table not in query:
            continue
        for match in re.finditer(r"COUNT\((\*|1)\)", query, re.I):
            rest = query[match.end() :]
            inner = re.match(r'(\s+AS\s+"?\w+"?)?\s+FROM\s+\(', rest, re.I)
            if inner is None:
                found.append(query)
                continue
            depth, start = 1, inner.end()
            for end in range(start, len(rest)):
                depth += {"(": 1, ")": -1}.get(rest[end], 0)
                if depth == 0:
                    break
            if not re.search(r"\bLIMIT\s+\d+\s*$", rest[start:end], re.I):
                found.append(query)
    return found


def test_every_page_costs_the_same_queries_at_100_000_executions_as_at_10(admin_client):
    base = timezone.now()
    insert_executions(1, SMALL + 1, base)
    insert_the_rest()
    assert WorkflowExecution.objects.count() == SMALL

    small = {name: measure(admin_client, url) for name, url in pages().items()}
    assert re.search(r"<p class=\"paginator\">\s*10\s+workflow executions", small["list"][1])

    insert_executions(SMALL + 1, LARGE + 1, base)
    assert WorkflowExecution.objects.count() == LARGE
    assert HistoryEvent.objects.count() == EVENTS_PER_EXECUTION * LARGE

    large = {name: measure(admin_client, url) for name, url in pages().items()}

    counted = {
        size: {name: len(q) for name, (q, _) in got.items()}
        for size, got in (("small", small), ("large", large))
    }
    assert counted["small"] == EXPECTED_QUERIES, counted
    assert counted["large"] == EXPECTED_QUERIES, counted
    table = WorkflowExecution._meta.db_table
    for name in ("list", "list: running", "search: execution id", "search: workflow name prefix"):
        assert unbounded_counts(large[name][0], table) == [], name
    assert any("COUNT(" in query.upper() for query in large["list"][0])
    # The pages show the data they were measured on.
    assert re.search(
        r'<p class="paginator">.*?More than 10000\s+workflow executions', large["list"][1], re.S
    )
    counts = re.findall(
        r'data-status="(\w+)">.*?<span class="count">([^<]+)</span>', large["list"][1], re.S
    )
    capped = "more than 10000"  # a quarter of the executions each: 25,000
    assert dict(counts) == {
        "running": capped,
        "blocked": "0",
        "completed": capped,
        "failed": capped,
        "canceled": capped,
        "timed_out": "0",
    }
    assert str(execution_id(8)) in large["search: execution id"][1]
    assert "signal go" in large["list: running"][1]
    assert "Timeline: 3 events" in large["execution page"][1]


def test_the_unbounded_count_check_finds_a_count_over_the_whole_table():
    with CaptureQueriesContext(connection) as captured:
        WorkflowExecution.objects.count()
        WorkflowExecution.objects.filter(status="running").count()
        WorkflowExecution.objects.all()[:5].count()
    table = WorkflowExecution._meta.db_table
    whole, running, capped = (query["sql"] for query in captured.captured_queries)
    assert unbounded_counts([whole, running, capped], table) == [whole, running]
