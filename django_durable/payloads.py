"""How values and errors become the JSON that is stored: checked before anything is written.

A value that the database would refuse is refused here, with the reason and the place, so
that it fails where it was produced (a `PayloadError` the caller can handle) instead of as
a `DataError` each time a worker tries to record it. PostgreSQL's `jsonb` cannot hold NUL
(`\\u0000`), lone surrogates (not valid Unicode), or numbers of more than 131072 digits.
"""

from __future__ import annotations

import functools
import json
import json.encoder
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from .conf import durable_setting
from .exceptions import PayloadError

# An escaped NUL in JSON text: `\u0000` preceded by an even number of backslashes (an odd
# number means the backslash before `u0000` is itself escaped, i.e. text, not a NUL).
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
# A float written with a positive exponent (`1e+16`): PostgreSQL reads it back as an integer.
_POSITIVE_EXPONENT = re.compile(r"\de\+")
_STRING = re.compile(r'"(?:[^"\\]+|\\.)*"')
_INNERMOST = re.compile(r"\[\]|\{\}")
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
NUMERIC_DIGITS = 131072  # digits before the decimal point PostgreSQL's numeric can hold


def _make_encode() -> Callable[[Any], str]:
    """`json.dumps(value, ensure_ascii=False, allow_nan=False)`, its C encoder built once:
    `json.dumps` and `JSONEncoder.encode` build one per call, most of a small payload's cost.
    Without circular-reference markers: a value that contains itself ends as the
    `RecursionError` that `to_json_value` reports as nesting too deep."""
    encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
    if json.encoder.c_make_encoder is None:  # a Python without the C accelerator
        return encoder.encode
    c_encode = json.encoder.c_make_encoder(
        None,  # markers
        encoder.default,
        json.encoder.encode_basestring,
        None,  # indent
        encoder.key_separator,
        encoder.item_separator,
        False,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan
    )
    return lambda value: "".join(c_encode(value, 0))


_encode = _make_encode()
MAX_NESTING = 200  # levels of lists and dicts a payload may have, whatever the stack depth
MAX_ERROR_TEXT = 32_000  # characters kept of an error's message and of its traceback


def to_json_value(value: Any, what: str) -> Any:
    """Return `value` as it will read back from storage, or raise `PayloadError`.

    Round-tripping now means the first run and every replay see the same types (a tuple
    becomes a list, a float of 1e16 or more the integer PostgreSQL returns for it), and a
    bad value fails where it was produced. `what` names the value in the error
    ("The input of workflow 'shop.order'").
    """
    try:
        # Not ASCII-escaped: a lone surrogate stays one character, found by the encode below.
        text = _encode(value)
    except RecursionError:
        raise PayloadError(
            f"{what} is nested more than {MAX_NESTING} levels deep (or contains itself); "
            f"flatten it or store it as a string."
        ) from None
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{what} must be JSON-serializable: {exc}.") from None
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise PayloadError(
            f"{what} contains a NUL character (\\x00) {_find(value, _has_nul)}, which "
            f"PostgreSQL cannot store in JSON. Remove it, or encode the data (e.g. base64)."
        )
    try:
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise PayloadError(
            f"{what} contains a lone surrogate {_find(value, _has_surrogate)}, which is not "
            f"valid Unicode and cannot be stored. Decode the text it came from correctly, "
            f"or drop the character."
        ) from None
    limit = durable_setting("MAX_PAYLOAD_BYTES")
    if size > limit:
        raise PayloadError(f"{what} is {size} bytes of JSON, over the {limit}-byte limit.")
    if size > NUMERIC_DIGITS and not 0 < sys.get_int_max_str_digits() <= NUMERIC_DIGITS:
        # Only with Python's own limit on integer digits lifted can a number be this long.
        if (place := _find(value, _has_huge_int)) is not None:
            raise PayloadError(
                f"{what} contains an integer {place} of more than {NUMERIC_DIGITS} digits, "
                f"more than PostgreSQL can store in JSON. Store it as a string."
            )
    if text.count("[") + text.count("{") > MAX_NESTING and _too_deep(text):
        raise PayloadError(
            f"{what} is nested more than {MAX_NESTING} levels deep; flatten it or store it "
            f"as a string."
        )
    stored = json.loads(text)
    # Written again, it reads the same unless two keys (1 and "1") became one: cheap in C.
    if len(_encode(stored)) != len(text):
        collided: list[str] = []
        json.loads(text, object_pairs_hook=functools.partial(_object, collided))
        raise PayloadError(
            f"{what} has keys that become the same JSON key {collided[:1]} (JSON keys are "
            f'strings, so 1 and "1" collide) and one value would be lost. Use distinct '
            f"string keys."
        )
    if "e+" in text and _POSITIVE_EXPONENT.search(text):  # json.dumps writes floats `1e+16`
        try:
            stored = _exact_floats(stored)
        except RecursionError:
            raise PayloadError(f"{what} is nested too deeply to be stored.") from None
    return stored


def _object(collided: list[str], pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as `json.loads` builds it, noting a key that occurs twice: the value
    had keys, such as 1 and "1", that `json.dumps` writes the same."""
    built = dict(pairs)
    if len(built) != len(pairs):
        seen: set[str] = set()
        collided.extend(key for key, _ in pairs if key in seen or seen.add(key))
    return built


def _too_deep(text: str) -> bool:
    """Whether lists and objects in JSON `text` nest more than `MAX_NESTING` deep.

    A limit of its own, so what is accepted never depends on the caller's stack depth (a
    value that just fits one thread's stack would fail in a worker's deeper one). Counted in
    C: strings dropped, then innermost `[]` / `{}` pairs removed one level per round.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(MAX_NESTING):
        if not brackets:
            return False
        brackets = _INNERMOST.sub("", brackets)
    return bool(brackets)


def check_text(text: str, what: str) -> str:
    """Return `text` if a text column can hold it (no NUL, valid Unicode); else raise
    `PayloadError`. For names, ids and reasons stored beside payloads."""
    if "\x00" in text:
        raise PayloadError(
            f"{what} {text!a} contains a NUL character (\\x00), which PostgreSQL cannot "
            f"store in text. Remove it."
        )
    if _SURROGATE.search(text):
        raise PayloadError(
            f"{what} {text!a} contains a lone surrogate, which is not valid Unicode and "
            f"cannot be stored. Remove it."
        )
    return text


def describe_exception(exc: BaseException) -> dict[str, str]:
    """The stored form of an error: its type, message and traceback text, always storable."""
    cls = type(exc)
    try:
        message = str(exc)
    except Exception:  # user code's __str__ may raise too
        message = f"<{cls.__name__}: str() failed>"
    return storable_error(
        {
            "type": f"{cls.__module__}.{cls.__qualname__}",
            "message": message,
            "traceback": "".join(traceback.format_exception(exc)),
        }
    )


def storable_error(error: dict[str, Any]) -> dict[str, Any]:
    """`error` with every string made storable: NUL and lone surrogates written as escapes
    (`\\x00`, `\\ud800`), and over-long text cut in the middle. An error must always be
    recordable, or the attempt or execution it ends would be retried for ever."""
    return {_storable_text(str(key)): _storable(item) for key, item in error.items()}


def _storable(item: Any) -> Any:
    if isinstance(item, str):
        return _storable_text(item)
    if isinstance(item, dict):
        return storable_error(item)
    if isinstance(item, list | tuple):
        return [_storable(element) for element in item]
    if item is None or isinstance(item, bool | int):
        return item
    if isinstance(item, float) and item == item and abs(item) != float("inf"):
        return item
    return _storable_text(repr(item))


def _storable_text(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii() and _SURROGATE.search(text):
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > MAX_ERROR_TEXT:
        half = MAX_ERROR_TEXT // 2
        text = f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"
    return text


# -- finding what is wrong, and where (only once a check has failed, so speed is no issue) --


def _has_nul(item: Any) -> bool:
    return isinstance(item, str) and "\x00" in item


def _has_surrogate(item: Any) -> bool:
    return isinstance(item, str) and _SURROGATE.search(item) is not None


def _has_huge_int(item: Any) -> bool:
    return isinstance(item, int) and not isinstance(item, bool) and abs(item) >= 10**NUMERIC_DIGITS


def _walk(value: Any) -> Iterator[tuple[str, Any, bool]]:
    """Every value and dict key in `value`, with its path (`["a"][0]`); the flag marks keys.

    Iterative, so that a payload nested as deeply as `json.dumps` allows can be walked.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        yield path, item, False
        if isinstance(item, dict):
            for key, child in reversed(item.items()):
                yield path, key, True
                stack.append((f"{path}[{key!a}]", child))
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}[{i}]", child) for i, child in reversed(list(enumerate(item))))


def _find(value: Any, bad: Callable[[Any], bool]) -> str | None:
    """Where in `value` the first item that is `bad` sits, in words; None if nowhere."""
    for path, item, is_key in _walk(value):
        if bad(item):
            if is_key:
                return f"in the key {item!a} of {path or 'the top-level dict'}"
            return f"at {path}" if path else "in the value itself"
    return None


def _exact_floats(value: Any) -> Any:
    """Floats written with a positive exponent become the integers PostgreSQL returns for
    them (its `numeric` keeps `1e+16` as 10000000000000000), on every database alike."""
    if isinstance(value, float):
        text = repr(value)
        return int(Decimal(text)) if "e+" in text else value
    if isinstance(value, dict):
        return {key: _exact_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_exact_floats(item) for item in value]
    return value
