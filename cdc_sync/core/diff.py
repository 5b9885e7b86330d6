"""Change detection: a fingerprint of each composed record, classified against what state knows.

Pure: no I/O, no SQLAlchemy. `classify` takes anything shaped like `cdc_sync.state.StateRow`
(see `PriorState`), so this module never imports the state package and its database driver.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any, NoReturn, Protocol

import orjson

from cdc_sync.core.resources import Payload

# One encoder built once: json.dumps with non-default options builds a new encoder per call,
# which is measurable at millions of records per cycle.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# The C encoder that _CANONICAL.encode builds on every call, built once, with the same options.
# No circular-reference bookkeeping: composed payloads are trees. About a quarter faster.
_C_ENCODE: Callable[[Any, int], Iterable[str]] | None = (
    None if c_make_encoder is None else c_make_encoder(
        None, _CANONICAL.default, encode_basestring, None, ":", ",", True, False, True
    )
)

FINGERPRINT_LENGTH = 32
"""Hex characters kept from the sha256: 128 bits, far beyond any shop's record count."""


class Change(StrEnum):
    """What a record needs this cycle, given its fingerprint and its state row."""

    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    RETRY = "retry"
    FORCED = "forced"

    @property
    def needs_sending(self) -> bool:
        return self is not Change.UNCHANGED


class PriorState(Protocol):
    """What `classify` reads of a state row; `cdc_sync.state.StateRow` satisfies it."""

    @property
    def status(self) -> str: ...

    @property
    def forced(self) -> bool: ...

    @property
    def synced_fingerprint(self) -> str | None: ...

    @property
    def attempt_fingerprint(self) -> str | None: ...


# orjson writes what json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# writes, byte for byte, for str keys, text, ints within 64 bits, bools, None, lists and
# floats from 1e-4 up (both print the shortest repr that reads back), about 2.5 times faster.
# Everything else is left to json, so fingerprints never change: a type orjson would encode
# its own way (subclasses, dataclasses, datetimes) or cannot (ints beyond 64 bits, non-text
# keys, invalid text) raises here and goes to json, and the two float cases it prints
# differently are recognised in its output (see _may_differ). Only a UUID or a plain Enum,
# which json refuses and no coercion produces, is written by orjson (as text, as its value).
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
# Python prints a float below 1e-4 in exponent form ("1e-05"); orjson prints it as "0.00001"
# or "1e-5". Either way a digit is followed by "e-", or "0.0000" appears. Text holding those
# (a product URL "chair-1" does not: no digit before the e) only costs a json encoding.
_SMALL_FLOAT = re.compile(rb"[0-9]e-")


def _not_orjson(value: Any) -> NoReturn:
    raise TypeError(f"{type(value).__name__}: left to json")


def canonical_json(payload: Payload) -> bytes:
    """The payload as UTF-8 JSON with sorted keys and no whitespace: equal records, equal bytes.

    The bytes are json.dumps's (the fingerprints of every synced record depend on them),
    written by orjson where it writes the same.
    """
    try:
        fast: bytes = orjson.dumps(payload, default=_not_orjson, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is one
        return _json_canonical(payload)
    if _may_differ(fast, payload):
        return _json_canonical(payload)
    return fast


def _may_differ(fast: bytes, payload: Any) -> bool:
    """Whether orjson's `fast` encoding of `payload` may not be json's: a float below 1e-4,
    or NaN or an infinity (orjson writes null for those, json NaN/Infinity)."""
    if b"0.0000" in fast or (b"e-" in fast and _SMALL_FLOAT.search(fast) is not None):
        return True
    return b"null" in fast and _has_non_finite(payload)


def _has_non_finite(value: Any) -> bool:
    if value.__class__ is float:
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(v) for v in value)
    return False


def _json_canonical(payload: Any) -> bytes:
    """The canonical encoding by the standard library's json: what defines the bytes."""
    if _C_ENCODE is None or payload.__class__ is not dict:
        return _CANONICAL.encode(payload).encode("utf-8")
    return "".join(_C_ENCODE(payload, 0)).encode("utf-8")


def fingerprint(payload: Payload) -> str:
    """A short hex digest of the canonical JSON; it changes exactly when the record does."""
    return fingerprint_json(canonical_json(payload))


def fingerprint_json(canonical: bytes) -> str:
    """The fingerprint of a payload already encoded by `canonical_json` (no second encoding)."""
    return hashlib.sha256(canonical).hexdigest()[:FINGERPRINT_LENGTH]


def source_seed(*parts: str) -> bytes:
    """The key for `source_fingerprint`: everything besides a row's values that shapes its
    record (the mapping's fingerprint, cdc-sync's version), so a change there recomposes."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()


def source_fingerprint(
    seed: bytes, raw: Sequence[Any], children: Sequence[Sequence[Sequence[Any]]]
) -> str | None:
    """A digest of a source row's raw values and child rows, as the database driver gave them;
    None when they cannot be fingerprinted safely.

    Under the same seed, equal raw values compose into the same record, so a row whose source
    fingerprint matches the one state keeps for its synced record is unchanged without being
    composed (in a no-change cycle, that is nearly every row). `repr` of what the drivers give
    (int, str, Decimal, float, date/datetime/time/timedelta, bytes, None, UUID, JSON values)
    is exact and stable across processes, unlike `hash()`. A value whose repr is only an
    address ("<memory at 0x...>") would say nothing of its content, and the address can be
    reused: such rows get no fingerprint and are always composed (safe, only slower).
    """
    # Rows become plain tuples first: the repr of a driver's or SQLAlchemy's row class may be
    # slow Python code (SQLAlchemy's Row: 3x the cost of composing the record), or shortened.
    return SourceHasher(seed)(tuple(raw), [[tuple(row) for row in rows] for rows in children])


class SourceHasher:
    """`source_fingerprint` under one seed, for rows that are plain tuples already (what
    `source.stream` gives), with the keyed hash set up once: the planner's hot path.

    Same digests as `source_fingerprint`. Given rows of another class (a list, a Row), it
    still gives a digest, just another one: such a row would be composed and compared as a
    record every cycle (the mark is an optimisation, never the decision to send).
    """

    __slots__ = ("_keyed",)

    def __init__(self, seed: bytes) -> None:
        self._keyed = hashlib.blake2b(digest_size=16, key=seed)

    def __call__(self, raw: Sequence[Any],
                 children: Sequence[Sequence[Sequence[Any]]]) -> str | None:
        text = repr((raw, list(children)))
        if " at 0x" in text:
            return None
        digest = self._keyed.copy()  # the key is already hashed in: cheaper than a new one
        digest.update(text.encode("utf-8", "surrogatepass"))
        return digest.hexdigest()


class DigestHasher:
    """The mark of a row whose digest the database computed (`source/digests.py`): a keyed
    blake2b of the digest text under the seed, so a mapping change still recomposes. Equal
    digest texts mean equal values as the driver parses them, so equal records."""

    __slots__ = ("_keyed",)

    def __init__(self, seed: bytes) -> None:
        self._keyed = hashlib.blake2b(digest_size=16, key=seed)

    def __call__(self, digest: str) -> str:
        keyed = self._keyed.copy()
        keyed.update(digest.encode("ascii"))
        return keyed.hexdigest()


def classify(fp: str, row: PriorState | None) -> Change:
    """Decide what a record with fingerprint `fp` needs, given its state row (None: never seen).

    A pending record is sent again even if unchanged (Metrilo never said 200 for it); a
    rejected one stays rejected until it changes or `cdc-sync retry` makes it pending; a gone
    one that shows up again is new.
    """
    if row is None:
        return Change.NEW
    if row.forced:
        return Change.FORCED
    status = row.status
    if status == "pending":
        return Change.RETRY
    if status == "synced" and fp == row.synced_fingerprint:
        return Change.UNCHANGED
    if status == "rejected" and fp == row.attempt_fingerprint:
        return Change.UNCHANGED
    if status == "gone":
        return Change.NEW
    return Change.CHANGED
