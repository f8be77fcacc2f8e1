"""What the durable_* commands share: reading JSON options and turning errors into CommandError."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from django.core.management.base import CommandError

JSON_TYPE_NAMES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def parse_json_option(text: str, option: str) -> Any:
    """Parse an option's JSON strictly (no NaN or Infinity), so bad input fails before any write.

    Raises:
        CommandError: naming the option and where the JSON went wrong.
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:  # json.JSONDecodeError included
        raise CommandError(f"{option} is not valid JSON: {exc}.") from exc
    except RecursionError:
        raise CommandError(f"{option} is nested too deeply to be stored.") from None


def check_amount(value: float | None, option: str, unit: str) -> None:
    """Refuse a NaN, infinite or negative number of `unit` given to `option`, before any
    write: argparse's `float` takes "nan" and "inf", which would hang a wait or overflow a
    date.

    Raises:
        CommandError: naming the option and what it must be.
    """
    if value is None:
        return
    if not math.isfinite(value):
        raise CommandError(f"{option} must be a finite number of {unit}, not {value}.")
    if value < 0:
        raise CommandError(f"{option} must not be negative.")


def json_type_name(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages ("an array", "null")."""
    return JSON_TYPE_NAMES.get(type(value), type(value).__name__)


@contextmanager
def command_errors(*errors: type[Exception]) -> Iterator[None]:
    """Report the expected `errors` as a one-line CommandError instead of a traceback."""
    try:
        yield
    except errors as exc:
        raise CommandError(" ".join(str(exc).split())) from exc
