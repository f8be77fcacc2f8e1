"""Run the tutorial's workflows through a real worker process, printing each step live."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from django_durable import send_signal, start_workflow, wait_workflow
from django_durable.constants import EventKind
from django_durable.models import HistoryEvent, WorkflowExecution

MANAGE_PY = Path(__file__).resolve().parents[3] / "manage.py"


class Command(BaseCommand):
    help = "Start a worker, run the tutorial's workflows through it, print every step, stop."

    def add_arguments(self, parser):
        parser.add_argument("--procs", type=int, default=2, help="Activity processes.")
        parser.add_argument(
            "--timer",
            type=float,
            default=2.0,
            help="Seconds the tutorial's one-hour timer is shortened to.",
        )

    def handle(self, *args, procs, timer, **options):
        self.started = time.monotonic()
        worker = subprocess.Popen(
            [
                sys.executable,
                str(MANAGE_PY),
                "durable_worker",
                "--procs",
                str(procs),
                "--tick",
                "0.2",
            ],
            start_new_session=True,
        )
        try:
            self.run_demo(timer)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                raise CommandError("The worker did not stop within 30 s.") from None

    def say(self, text: str) -> None:
        self.stdout.write(f"[{time.monotonic() - self.started:6.2f}s] {text}")

    def run_demo(self, timer: float) -> None:
        executions = {
            start_workflow("yourapp.onboard_user", user_id=7, wait_seconds=timer): "onboard_user",
            start_workflow(
                "yourapp.onboard_user_async", user_id=8, wait_seconds=timer
            ): "onboard_user_async",
            start_workflow("yourapp.example_with_signal"): "example_with_signal",
        }
        for execution_id, label in executions.items():
            self.say(f"started {label} as {execution_id}")
        signal_target = next(k for k, v in executions.items() if v == "example_with_signal")
        seen: dict = {execution_id: 0 for execution_id in executions}
        signaled = False
        deadline = time.monotonic() + 60 + timer
        while time.monotonic() < deadline:
            for event in HistoryEvent.objects.filter(execution_id__in=list(executions)).order_by(
                "created_at", "sequence"
            ):
                if event.sequence > seen[event.execution_id]:
                    seen[event.execution_id] = event.sequence
                    self.print_event(executions[event.execution_id], event)
            if not signaled and self.waits_for_signal(signal_target):
                send_signal(signal_target, "go", {"clicked": True})
                self.say('example_with_signal: sent signal "go" {"clicked": true}')
                signaled = True
            if not WorkflowExecution.objects.filter(
                pk__in=list(executions), finished_at__isnull=True
            ).exists():
                break
            time.sleep(0.05)
        for execution_id, label in executions.items():
            result = wait_workflow(execution_id, timeout=1)
            self.stdout.write(self.style.SUCCESS(f"{label} -> {result}"))

    def print_event(self, label: str, event: HistoryEvent) -> None:
        if event.kind == EventKind.WORKFLOW_TASK_STARTED:
            return
        detail = f" {event.name}" if event.name else ""
        if event.kind == EventKind.TIMER_STARTED:
            detail = f" for {event.data['duration']:g} s"
        elif event.kind in (EventKind.ACTIVITY_COMPLETED, EventKind.WORKFLOW_COMPLETED):
            detail += f" -> {event.data.get('result')}"
        elif event.kind == EventKind.SIGNAL_RECEIVED:
            detail += f" {event.data.get('payload')}"
        self.say(f"{label}: {event.kind.replace('_', ' ')}{detail}")

    @staticmethod
    def waits_for_signal(execution_id) -> bool:
        return HistoryEvent.objects.filter(
            execution_id=execution_id, kind=EventKind.TIMER_FIRED
        ).exists()
