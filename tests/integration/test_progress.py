"""Progress of long commands (durable_prune, durable_bench) through the one shared helper: a
bar redrawn in place on a terminal, plain lines otherwise."""

import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import OutputWrapper
from django.utils import timezone

from django_durable import store
from django_durable.constants import ExecutionStatus
from django_durable.management import progress
from django_durable.management.progress import Progress
from django_durable.models import WorkflowExecution

pytestmark = pytest.mark.django_db(transaction=True)

CLEAR = "\r\033[K"


class Terminal(io.StringIO):
    """What a command sees when its output goes to a terminal."""

    def isatty(self) -> bool:
        return True


def old_ended_executions(count: int) -> None:
    for _ in range(count):
        store.start_execution("testapp.add_twice", {})
    WorkflowExecution.objects.update(
        status=ExecutionStatus.COMPLETED, finished_at=timezone.now() - timedelta(days=40)
    )


def prune(*args: str, stderr: io.StringIO) -> str:
    out = io.StringIO()
    call_command("durable_prune", "--older-than", "30", *args, stdout=out, stderr=stderr)
    return out.getvalue()


# -- the helper ------------------------------------------------------------------------------


def test_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    shown = Progress(stream, every=0)
    shown.task("Steps", 3)
    shown.update(1)
    shown.update(1)  # no news: no line
    shown.update(3)
    shown.end()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "Steps: 0/3"
    assert re.fullmatch(r"Steps: 1/3 \(\d+\.\d s\)", lines[1])
    assert re.fullmatch(r"Steps: 3/3 \(\d+\.\d s\)", lines[2])
    assert re.fullmatch(r"Steps: 3/3 in \d+\.\d s", lines[3])
    assert len(lines) == 4
    assert "\r" not in stream.getvalue() and "[" not in stream.getvalue()


def test_plain_lines_come_at_most_every_few_seconds():
    stream = io.StringIO()
    shown = Progress(stream)  # every PLAIN_EVERY seconds
    shown.task("Steps", 100)
    for done in range(1, 101):
        shown.update(done)
    shown.end()
    assert [line.split(" in ")[0] for line in stream.getvalue().splitlines()] == [
        "Steps: 0/100",
        "Steps: 100/100",
    ]


def test_a_bar_redrawn_in_place_on_a_terminal():
    stream = Terminal()
    shown = Progress(stream)
    shown.task("Steps", 4)
    shown.update(1)
    shown.update(4)
    shown.note("a note")
    shown.end()
    written = stream.getvalue()
    draws = written.split("\r")
    assert draws[0] == ""  # nothing before the first redraw: no plain start line
    assert re.fullmatch(r"Steps \[#{7}-{23}\] 1/4 +\d+\.\d s", draws[1])
    assert re.fullmatch(r"Steps \[#{30}\] 4/4 +\d+\.\d s", draws[2])
    assert draws[3] == "\033[Ka note\n"  # a note clears the bar's line first
    assert re.fullmatch(r"\033\[KSteps: 4/4 in \d+\.\d s\n", draws[4])


def test_an_unknown_total_shows_the_count_without_a_bar():
    stream = Terminal()
    shown = Progress(stream)
    shown.task("Deleted", None)
    shown.advance(500)
    shown.advance(20)
    shown.end()
    draws = stream.getvalue().split("\r")
    assert re.fullmatch(r"Deleted 500 +\d+\.\d s", draws[1])
    assert re.fullmatch(r"Deleted 520 +\d+\.\d s", draws[2])
    assert re.fullmatch(r"\033\[KDeleted: 520 in \d+\.\d s\n", draws[3])


def test_a_commands_wrapped_stream_gets_no_newline_after_each_redraw():
    terminal = Terminal()
    shown = Progress(OutputWrapper(terminal))  # a command's self.stderr
    assert shown.tty
    shown.task("Steps", 2)
    shown.update(1)
    assert "\n" not in terminal.getvalue()


def test_the_benchmark_draws_its_progress_with_the_same_helper():
    from worker.bench import runner, session, waiting
    from worker.bench.management.commands import durable_bench

    for module in (runner, session, waiting, durable_bench):
        assert module.Progress is Progress


# -- durable_prune ---------------------------------------------------------------------------


def test_prune_executions_reports_each_batch():
    old_ended_executions(5)
    batches: list[int] = []
    before = timezone.now() - timedelta(days=30)
    assert store.prune_executions(before, batch=2, on_batch=batches.append) == 5
    assert batches == [2, 2, 1]
    assert store.prune_executions(before, batch=2, on_batch=batches.append) == 0
    assert batches == [2, 2, 1]  # nothing deleted: no batch


def test_prune_draws_a_bar_on_a_terminal_unless_verbosity_is_0():
    old_ended_executions(5)
    terminal = Terminal()
    out = prune("--batch", "2", stderr=terminal)
    assert out.startswith("Deleted 5 execution(s)")  # the result stays on stdout
    draws = terminal.getvalue().split("\r")
    assert [re.sub(r" +\d+\.\d s$", "", draw) for draw in draws[1:4]] == [
        "Executions deleted 2",
        "Executions deleted 4",
        "Executions deleted 5",
    ]
    assert re.fullmatch(r"\033\[KExecutions deleted: 5 in \d+\.\d s\n", draws[4])

    old_ended_executions(3)
    terminal = Terminal()
    assert prune("--batch", "2", "-v", "0", stderr=terminal).startswith("Deleted 3 execution(s)")
    assert terminal.getvalue() == ""  # -v 0: no progress


def test_prune_writes_plain_lines_when_not_a_terminal(monkeypatch):
    old_ended_executions(5)
    log = io.StringIO()
    assert prune("--batch", "2", stderr=log).startswith("Deleted 5 execution(s)")
    lines = log.getvalue().splitlines()
    assert lines[0] == "Executions deleted: 0"
    assert re.fullmatch(r"Executions deleted: 5 in \d+\.\d s", lines[-1])
    assert "\r" not in log.getvalue()

    old_ended_executions(5)
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0)  # a line at every batch
    log = io.StringIO()
    prune("--batch", "2", stderr=log)
    counts = [
        re.sub(r" \(\d+\.\d s\)$| in \d+\.\d s$", "", line) for line in log.getvalue().splitlines()
    ]
    assert counts == [
        "Executions deleted: 0",
        "Executions deleted: 2",
        "Executions deleted: 4",
        "Executions deleted: 5",
        "Executions deleted: 5",
    ]
