"""django-durable's own activities, found by autodiscovery like any installed app's."""

from .tasks import runner  # noqa: F401  (registers the activity django_durable.run_task)
