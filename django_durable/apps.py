"""The Django app: discovers workflow and activity modules once the app registry is ready."""

from django.apps import AppConfig


class DurableConfig(AppConfig):
    name = "django_durable"
    verbose_name = "Durable workflows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .registry import autodiscover
        from .store.db import tune_sqlite

        tune_sqlite()
        autodiscover()
