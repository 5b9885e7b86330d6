"""Fingerprints and change classification (pure: no database)."""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import IntEnum, StrEnum

import pytest

from cdc_sync.core.diff import (
    Change,
    SourceHasher,
    canonical_json,
    classify,
    fingerprint,
    source_fingerprint,
    source_seed,
)


@dataclass(frozen=True)
class Row:
    status: str
    forced: bool = False
    synced_fingerprint: str | None = None
    attempt_fingerprint: str | None = None


@pytest.mark.parametrize(
    ("fp", "row", "expected"),
    [
        ("a", None, Change.NEW),
        ("a", Row("synced", synced_fingerprint="a", attempt_fingerprint="a"), Change.UNCHANGED),
        ("b", Row("synced", synced_fingerprint="a", attempt_fingerprint="a"), Change.CHANGED),
        ("a", Row("synced", forced=True, synced_fingerprint="a"), Change.FORCED),
        ("a", Row("pending", synced_fingerprint="a", attempt_fingerprint="a"), Change.RETRY),
        ("a", Row("pending"), Change.RETRY),
        ("a", Row("pending", forced=True), Change.FORCED),
        ("b", Row("rejected", synced_fingerprint="a", attempt_fingerprint="b"), Change.UNCHANGED),
        ("c", Row("rejected", synced_fingerprint="a", attempt_fingerprint="b"), Change.CHANGED),
        # Rejected, then changed back to what Metrilo last accepted: send it again.
        ("a", Row("rejected", synced_fingerprint="a", attempt_fingerprint="b"), Change.CHANGED),
        ("a", Row("gone", synced_fingerprint="a", attempt_fingerprint="a"), Change.NEW),
        ("a", Row("gone", forced=True, synced_fingerprint="a"), Change.FORCED),
    ],
)
def test_classify_table(fp: str, row: Row | None, expected: Change) -> None:
    assert classify(fp, row) is expected


def test_only_unchanged_needs_no_sending() -> None:
    assert [c for c in Change if not c.needs_sending] == [Change.UNCHANGED]


def test_canonical_json_ignores_key_order() -> None:
    one = {"id": "1", "price": 10, "options": [{"b": 2, "a": 1}], "name": "x"}
    two = {"name": "x", "options": [{"a": 1, "b": 2}], "price": 10, "id": "1"}
    assert canonical_json(one) == canonical_json(two)
    assert fingerprint(one) == fingerprint(two)


def test_canonical_json_is_compact_sorted_utf8() -> None:
    assert canonical_json({"b": [1, 2], "a": "Zürich €"}) == (
        '{"a":"Zürich €","b":[1,2]}'.encode()
    )


def _json_dumps(payload: object) -> bytes:
    """What canonical JSON is defined as (and what every stored fingerprint was made from)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


class _Size(StrEnum):
    SMALL = "S"


class _Rank(IntEnum):
    FIRST = 1


_TRICKY = [
    1e-05, -1.5e-07, 5e-324, 0.0001, 0.00012, 1e16, 1.2345678901234568e16, 1e300, -0.0, 0.1,
    float("nan"), float("inf"), float("-inf"),
    2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**40,
    "\x00\x1f\x7f\u2028\u2029\ud7ff\ue000\U0001f600 \"quoted\" back\\slash /",
    "1e-5 and 0.00001 as text", "smart-chair-1",
    True, False, None, [], {}, (1, 2), _Size.SMALL, _Rank.FIRST,
    {"é": 1, "e": 2, "\U0001f600": 3, "\uffff": 4, "Z": 5, "a": {"y": None, "x": [1e-9]}},
]


@pytest.mark.parametrize("value", _TRICKY, ids=repr)
def test_canonical_json_is_json_dumps_byte_for_byte(value: object) -> None:
    payload = {"value": value, "name": "Zürich", "price": 10.5, "tags": [None, 1]}
    assert canonical_json(payload) == _json_dumps(payload)


def test_canonical_json_of_any_float_is_json_dumps_byte_for_byte() -> None:
    rnd = random.Random(15)
    for n in range(20_000):
        bits = struct.unpack("<d", rnd.getrandbits(64).to_bytes(8, "little"))[0]
        value = (bits, rnd.uniform(-1e6, 1e6), round(rnd.uniform(0, 1e4), 2))[n % 3]
        payload = {"amount": value}
        assert canonical_json(payload) == _json_dumps(payload), value


def test_canonical_json_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError):
        canonical_json({"at": datetime(2024, 5, 30)})
    with pytest.raises(TypeError):
        canonical_json({"amount": Decimal("1.5")})
    with pytest.raises(UnicodeEncodeError):
        canonical_json({"name": "half a pair \ud800"})


def test_list_order_is_part_of_the_record() -> None:
    assert fingerprint({"tags": ["a", "b"]}) != fingerprint({"tags": ["b", "a"]})


def test_any_value_change_changes_the_fingerprint() -> None:
    base = {"id": "1", "price": 10}
    assert fingerprint(base) != fingerprint({"id": "1", "price": 11})
    assert fingerprint(base) != fingerprint({"id": "1", "price": "10"})
    assert fingerprint(base) != fingerprint({"id": "1", "price": 10, "sku": None})


def test_non_ascii_fingerprint_is_stable_across_processes() -> None:
    payload = {"name": "Ærøskøbing – 東京", "email": "zoë@example.com"}
    code = (
        "from cdc_sync.core.diff import fingerprint;"
        "print(fingerprint({'email': 'zoë@example.com', 'name': 'Ærøskøbing – 東京'}))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "123", "PYTHONIOENCODING": "utf-8"},
    )
    assert other.stdout.strip() == fingerprint(payload)


def test_fingerprint_is_32_hex_characters_of_sha256() -> None:
    # Pinned: changing the digest would make every record look changed after an upgrade.
    assert fingerprint({"a": 1}) == "015abd7f5cc57a2dd94b7590f04ad808"


def test_diff_imports_no_database_library() -> None:
    code = "import sys, cdc_sync.core.diff; print('sqlalchemy' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# -- source fingerprints: raw rows, before composing ------------------------------------------

_ROW = (7, datetime(2024, 5, 30, 16, 46, 22), "zoë@example.com", Decimal("10.40"), None)
_KIDS = [[(5001, 2, 7), (101, 1, 7)], []]


def test_source_fingerprint_depends_on_every_raw_value_and_child_row() -> None:
    seed = source_seed("mapping-fp", "1.0")
    base = source_fingerprint(seed, _ROW, _KIDS)
    assert base is not None
    assert len(base) == 32
    assert source_fingerprint(seed, _ROW, [[(5001, 2, 7), (101, 1, 7)], []]) == base
    assert source_fingerprint(seed, (*_ROW[:4], "x"), _KIDS) != base
    # 10.40 and 10.4 are equal numbers but compose (and Metrilo) may tell them apart
    assert source_fingerprint(seed, (*_ROW[:3], Decimal("10.4"), None), _KIDS) != base
    assert source_fingerprint(seed, _ROW, [[(101, 1, 7), (5001, 2, 7)], []]) != base  # order
    assert source_fingerprint(seed, _ROW, [[(5001, 2, 7)], [(101, 1, 7)]]) != base  # which child
    assert source_fingerprint(seed, _ROW, [[(5001, 2, 7), (101, 1, 7)], [("SAVE",)]]) != base


def test_source_fingerprint_changes_with_the_seed() -> None:
    # A mapping edit or a new cdc-sync version must recompose every row once.
    assert source_fingerprint(source_seed("a", "1"), _ROW, _KIDS) != source_fingerprint(
        source_seed("b", "1"), _ROW, _KIDS)
    assert source_fingerprint(source_seed("a", "1"), _ROW, _KIDS) != source_fingerprint(
        source_seed("a", "2"), _ROW, _KIDS)


def test_the_planners_hasher_gives_the_same_marks_for_tuple_rows() -> None:
    # Marks already in state stay valid: no recompose after the planner switched to it.
    seed = source_seed("mapping-fp", "1.0")
    hasher = SourceHasher(seed)
    shapes: list[list[list[tuple[int, int, int]]]] = [_KIDS, [[]], []]
    for kids in shapes:
        assert hasher(_ROW, tuple(kids)) == source_fingerprint(seed, list(_ROW), kids)
    assert hasher(_ROW, ([(5001, 2, 7)], [])) != hasher(_ROW, ([(5001, 2, 8)], []))
    assert hasher((1, memoryview(b"abc")), ()) is None


def test_values_known_only_by_their_address_get_no_source_fingerprint() -> None:
    # "<memory at 0x...>" says nothing of the bytes, and the address is reused: never trusted.
    assert source_fingerprint(source_seed("a"), (1, memoryview(b"abc")), []) is None
    assert source_fingerprint(source_seed("a"), (1, object()), []) is None


def test_source_fingerprint_is_stable_across_processes() -> None:
    code = (
        "from datetime import datetime; from decimal import Decimal;"
        "from cdc_sync.core.diff import source_fingerprint, source_seed;"
        "print(source_fingerprint(source_seed('m', 'v'), (7, datetime(2024, 5, 30, 16, 46, 22),"
        " 'zoë@example.com', Decimal('10.40'), None), [[(5001, 2, 7), (101, 1, 7)], []]))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "123", "PYTHONIOENCODING": "utf-8"},
    )
    assert other.stdout.strip() == source_fingerprint(source_seed("m", "v"), _ROW, _KIDS)
