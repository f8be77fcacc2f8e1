"""The benchmark's activity: it does nothing, so what is measured is the engine."""

from django_durable import register


@register.activity()
def noop(value):
    """Return `value` unchanged."""
    return value
