"""Run the tutorial's workflows end to end and print each step and the results."""

from django.core.management.base import BaseCommand

from django_durable import run_workflow
from django_durable.models import WorkflowExecution


class Command(BaseCommand):
    help = "Run the tutorial's onboard_user workflow (plain and async style) end to end."

    def handle(self, *args, **options):
        for name in ("yourapp.onboard_user", "yourapp.onboard_user_async"):
            self.stdout.write(f"== {name}(user_id=7): its one-hour timer is fast-forwarded")
            result = run_workflow(name, user_id=7)
            execution = WorkflowExecution.objects.filter(workflow_name=name).first()
            for event in execution.history.order_by("sequence"):
                label = f" {event.name}" if event.name else ""
                self.stdout.write(f"    history #{event.sequence}: {event.kind}{label}")
            self.stdout.write(self.style.SUCCESS(f"== {name} -> {result}"))
