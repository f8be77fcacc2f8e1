"""The forms behind the console's actions: JSON checked where it is typed, with the error
shown beside the field, before anything reaches the public API."""

from __future__ import annotations

import inspect
import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from ..registry import register


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None


class JSONText(forms.CharField):
    """A textarea whose text must be JSON; cleans to the parsed value."""

    widget = forms.Textarea(attrs={"rows": 6, "cols": 60, "class": "vLargeTextField"})

    def __init__(self, *, must_be_object: bool = False, **kwargs: Any) -> None:
        self.must_be_object = must_be_object
        kwargs.setdefault("strip", True)
        super().__init__(**kwargs)

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        parsed = _parse_json(text) if text else ({} if self.must_be_object else None)
        if self.must_be_object and not isinstance(parsed, dict):
            raise ValidationError(
                'The input must be a JSON object of keyword arguments, e.g. {"user_id": 3}.'
            )
        return parsed


def workflow_signature(name: str) -> str:
    """`name(param: type = default, ...)` without the context: what the input must fit."""
    signature = inspect.signature(register.workflows[name].fn)
    parameters = list(signature.parameters.values())[1:]
    return f"{name}({', '.join(str(p) for p in parameters)})"


# Keywords of `start_workflow` itself: an input key with one of these names would be taken
# as the option, not passed to the workflow.
START_OPTIONS = ("workflow_id", "id_reuse_policy", "execution_timeout")


class StartForm(forms.Form):
    workflow = forms.ChoiceField(
        help_text="A workflow registered in this project.",
        widget=forms.Select(attrs={"style": "max-width: 100%"}),
    )
    input = JSONText(
        must_be_object=True,
        required=False,
        initial="{}",
        help_text="Its keyword arguments, as a JSON object.",
    )
    workflow_id = forms.CharField(
        required=False,
        max_length=200,
        help_text="Optional: while an execution has this id, no other starts with it.",
    )
    execution_timeout = forms.FloatField(
        required=False,
        min_value=0.001,
        help_text="Optional: seconds after which the execution times out.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["workflow"].choices = [
            (name, workflow_signature(name)) for name in sorted(register.workflows)
        ]

    def clean_input(self) -> dict:
        arguments = self.cleaned_data["input"]
        if taken := sorted(set(arguments) & set(START_OPTIONS)):
            raise ValidationError(
                f"{', '.join(taken)}: an option of the start, not a workflow argument; "
                "use the field below."
            )
        return arguments


class SignalForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="The name the workflow waits for.")
    payload = JSONText(
        required=False,
        initial="null",
        help_text="Any JSON value; the workflow's wait_signal() returns it.",
    )


class CancelForm(forms.Form):
    reason = forms.CharField(
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Recorded in the history; the workflow sees asyncio.CancelledError.",
    )
