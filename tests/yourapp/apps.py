from django.apps import AppConfig


class YourAppConfig(AppConfig):
    """The tutorial's app, with its two files verbatim."""

    name = "tests.yourapp"
    label = "yourapp"
