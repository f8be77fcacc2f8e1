"""Hypothesis strategies: values a caller may pass, good and bad, and how to compare them."""

from __future__ import annotations

import datetime
import decimal
import json
import math
from typing import Any

from hypothesis import strategies as st

from django_durable.store.starts import IdReusePolicy

# -- text ------------------------------------------------------------------------------------

# Any character a database text column holds: Hypothesis leaves out lone surrogates by
# default; NUL is the one PostgreSQL refuses.
STORABLE_CHARACTERS = st.characters(codec="utf-8", exclude_characters="\x00")
storable_text = st.text(STORABLE_CHARACTERS, max_size=30)

NUL = st.just("\x00")
LONE_SURROGATE = st.integers(0xD800, 0xDFFF).map(chr)


def text_holding(bad: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Storable text with one `bad` character somewhere in it."""
    return st.builds(lambda head, char, tail: head + char + tail, storable_text, bad, storable_text)


unstorable_text = text_holding(NUL | LONE_SURROGATE)
not_text = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.binary(min_size=1, max_size=10),
    st.lists(storable_text, max_size=2),
    st.dictionaries(storable_text, st.integers(), max_size=2),
    st.uuids(),
    st.builds(object),
)


def names(max_length: int) -> st.SearchStrategy[str]:
    """Text a column of `max_length` characters holds: a name, a workflow_id."""
    return st.text(STORABLE_CHARACTERS, min_size=1, max_size=max_length)


def bad_names(max_length: int) -> st.SearchStrategy[Any]:
    """What a name or id argument must refuse: not text, empty, too long, unstorable."""
    return st.one_of(
        st.just(""),
        st.text(STORABLE_CHARACTERS, min_size=max_length + 1, max_size=max_length + 50),
        unstorable_text,
        not_text,
    )


# -- JSON values -----------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**300), 10**300),  # json and PostgreSQL's numeric hold these exactly
    st.floats(allow_nan=False, allow_infinity=False),
    storable_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)  # a tuple is stored, and read back, as a list
        | st.dictionaries(storable_text, children, max_size=4)
    ),
    max_leaves=12,
)

RESERVED = {"workflow_id", "id_reuse_policy", "execution_timeout"}  # start_workflow's own
workflow_inputs = st.dictionaries(
    storable_text.filter(lambda key: key not in RESERVED), json_values, max_size=5
)


def nested(depth: int, in_dict: bool) -> Any:
    """A list (or dict) nested `depth` levels deep, built without recursion."""
    value: Any = []
    for _ in range(depth):
        value = {"k": value} if in_dict else [value]
    return value


def embedded(bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`bad` alone, or somewhere inside otherwise good JSON."""
    return st.one_of(
        bad,
        st.builds(
            lambda good, item, at: [*good[:at], item, *good[at:]],
            st.lists(json_values, max_size=3),
            bad,
            st.integers(0, 3),
        ),
        st.builds(
            lambda good, key, item: {**good, key: item},
            st.dictionaries(storable_text, json_values, max_size=3),
            storable_text,
            bad,
        ),
    )


not_json = embedded(
    st.one_of(
        st.builds(object),
        st.sets(st.integers(), max_size=3),
        st.frozensets(st.integers(), max_size=3),
        st.binary(max_size=10),
        st.complex_numbers(allow_nan=False),
        st.sampled_from([math.nan, math.inf, -math.inf]),
        st.datetimes(),
        st.dates(),
        st.uuids(),
        st.decimals(allow_nan=False),
        st.just(lambda: None),
        st.just(range(3)),
        # Too many digits for Python's own int-to-text limit (4300), so for JSON.
        st.integers(4301, 4500).map(lambda digits: 10**digits),
        # Keys json.dumps cannot write.
        st.dictionaries(st.tuples(st.integers()), st.integers(), min_size=1, max_size=2),
        st.dictionaries(st.builds(object), st.integers(), min_size=1, max_size=1),
        # Deeper than json.dumps (or anything recursive) can go.
        st.builds(nested, st.integers(5_000, 20_000), st.booleans()),
    )
)
unstorable_json = embedded(
    st.one_of(
        unstorable_text,
        st.builds(lambda key, item: {key: item}, unstorable_text, json_values),
    )
)

# -- everything else a call takes ------------------------------------------------------------

bad_seconds = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0, 0.0, -0.0, 10**400]),
    st.floats(max_value=0),
    st.integers(max_value=0),
    st.floats(min_value=1e12, allow_infinity=True),  # more than 100 years
    st.text(max_size=5),
    st.just("5"),
    st.booleans(),
    st.builds(object),
    st.just(datetime.timedelta(seconds=5)),
    st.just(decimal.Decimal("NaN")),
)
bad_wait_seconds = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 10**400]),
    st.floats(max_value=-1e-9),
    st.integers(max_value=-1),
    st.text(max_size=5),
    st.booleans(),
    st.builds(object),
    st.just(datetime.timedelta(seconds=5)),
)
bad_policies = st.one_of(
    storable_text.filter(lambda text: text not in IdReusePolicy.ALL),
    st.sampled_from([p.upper() for p in IdReusePolicy.ALL] + [f" {IdReusePolicy.ALL[0]}"]),
    st.none(),
    st.integers(),
    st.lists(st.sampled_from(IdReusePolicy.ALL), min_size=1, max_size=1),
    st.builds(object),
)

# Execution ids that name no execution: well-formed but unknown, malformed, or not ids at all.
unknown_execution_ids = st.one_of(
    st.uuids(),
    st.uuids().map(str),
    st.uuids().map(lambda value: value.hex.upper()),
    st.uuids().map(lambda value: f"{{{value}}}"),
    st.uuids().map(lambda value: f"urn:uuid:{value}"),
)
malformed_execution_ids = st.one_of(
    st.text(max_size=60),
    st.text("0123456789abcdef-", min_size=30, max_size=40),
    unstorable_text,
    st.text(min_size=100, max_size=200).map(lambda text: text * 100),
)
not_execution_ids = st.one_of(
    st.none(),
    st.integers(),
    st.floats(),
    st.binary(max_size=16),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(storable_text, st.integers(), max_size=1),
    st.tuples(st.uuids()),
    st.builds(object),
)


# -- comparing what was stored with what was given -------------------------------------------


def as_stored(value: Any) -> Any:
    """`value` as JSON says it: numbers compared as decimals (PostgreSQL may read 1e16
    back as 10000000000000000), tuples as lists. Iterative, for values nested hundreds deep."""
    holder: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, holder, 0)]
    while stack:
        item, parent, key = stack.pop()
        if item is None or isinstance(item, bool | str):
            converted = item
        elif isinstance(item, int | float):
            converted = decimal.Decimal(repr(item) if isinstance(item, float) else item)
        elif isinstance(item, list | tuple):
            converted = [None] * len(item)
            stack.extend((child, converted, index) for index, child in enumerate(item))
        elif isinstance(item, dict):
            converted = {}
            stack.extend((child, converted, name) for name, child in item.items())
        else:
            raise AssertionError(f"not a JSON value: {type(item).__name__}")
        parent[key] = converted
    return holder[0]


def json_size(value: Any) -> int:
    """How many bytes of JSON `value` is, as `DURABLE["MAX_PAYLOAD_BYTES"]` counts them."""
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
