"""django-durable's own workflows, found by autodiscovery like any installed app's."""

from .tasks import runner  # noqa: F401  (registers django_durable.run_task)
