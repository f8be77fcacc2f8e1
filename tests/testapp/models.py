from django.db import models


class Effect(models.Model):
    """One side effect of an activity attempt, so tests can count them across processes."""

    name = models.CharField(max_length=100)
    key = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} {self.key}"
