from django.db import models


class Effect(models.Model):
    """One side effect of an activity attempt, so tests can count them across processes."""

    name = models.CharField(max_length=100)
    key = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} {self.key}"


class ChaosEffect(models.Model):
    """The side effect of one run of a chaos-suite activity (tests/chaos): who wrote it.

    One row per run at most (`run` is unique), but deliberately no constraint on the
    command: a command executed twice must show up as two rows to be counted, not be
    refused and hidden.
    """

    execution_id = models.UUIDField()
    command_seq = models.PositiveIntegerField()
    attempt = models.PositiveIntegerField()
    run = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=50)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["execution_id", "command_seq"], name="chaos_effect_cmd")]

    def __str__(self) -> str:
        return f"{self.name} {self.execution_id}:{self.command_seq}:{self.attempt}"
