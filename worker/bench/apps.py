from django.apps import AppConfig


class BenchConfig(AppConfig):
    """The benchmark app: a trivial workflow and activity, and `manage.py durable_bench`."""

    name = "bench"
    label = "bench"
    verbose_name = "Durable benchmark"
