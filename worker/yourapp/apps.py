from django.apps import AppConfig


class YourAppConfig(AppConfig):
    """The demo app: the tutorial's workflows, in its plain style and in async style."""

    name = "yourapp"
    verbose_name = "Demo (tutorial) app"
