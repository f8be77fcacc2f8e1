"""How values and errors become the JSON that is stored: checked before anything is written."""

from __future__ import annotations

import json
import traceback
from typing import Any

from .conf import durable_setting
from .exceptions import PayloadError


def to_json_value(value: Any, what: str) -> Any:
    """Return `value` as it will read back from storage, or raise `PayloadError`.

    Round-tripping now means the first run and every replay see the same types (a tuple
    becomes a list either way), and a bad value fails where it was produced.
    """
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{what} must be JSON-serializable: {exc}.") from None
    limit = durable_setting("MAX_PAYLOAD_BYTES")
    if len(text) > limit:
        raise PayloadError(f"{what} is {len(text)} bytes of JSON, over the {limit}-byte limit.")
    return json.loads(text)


def describe_exception(exc: BaseException) -> dict[str, str]:
    """The stored form of an error: its type, message and traceback text."""
    cls = type(exc)
    return {
        "type": f"{cls.__module__}.{cls.__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }
