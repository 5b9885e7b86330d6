"""Turning a stream of records into Metrilo request bodies that respect the size limits.

Each record is serialized exactly once, here (or by the caller, who hands its bytes over in
`Item.body`); a request body is the envelope's bytes around the records' bytes, so retries and
bisection re-join bytes instead of re-encoding payloads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from cdc_sync.core.resources import Payload


@dataclass(frozen=True, slots=True)
class Item:
    """One record to send; `key` is the caller's state key (opaque to the client).

    `body` is the payload's JSON when the caller already has it, so it is not encoded a second
    time: the planner fingerprints every record from `diff.canonical_json`, which is compact
    UTF-8 JSON too (keys sorted: Metrilo does not care), and hands over only that (`payload`
    None: the record may have been composed in another process). The caller vouches that it
    is the payload's JSON and finite (a validated record is); None: `payload` is encoded here,
    NaN refused.
    """

    key: str
    payload: Payload | None = None
    body: bytes | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.payload is None and self.body is None:
            raise ValueError(f"item {self.key!r} has neither a payload nor a body")


@dataclass(frozen=True, slots=True)
class EncodedItem:
    """An item with its payload's JSON bytes, as they will appear in every body that holds it."""

    item: Item
    body: bytes


@dataclass(slots=True)
class Batch:
    """Items for one request, plus the ones that could not go into any request at all."""

    items: list[EncodedItem] = field(default_factory=list)
    unsendable: list[tuple[Item, str]] = field(default_factory=list)


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
# The C encoder _COMPACT.encode builds on every call, built once with the same options: every
# record sent is serialized here, and this is a quarter faster. No circular-reference check:
# records are trees.
_C_ENCODE: Callable[[Any, int], Iterable[str]] | None = (
    None if c_make_encoder is None else c_make_encoder(
        None, _COMPACT.default, encode_basestring, None, ":", ",", False, False, False
    )
)


def to_json(value: object) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities are refused since they are not JSON."""
    if _C_ENCODE is None or value.__class__ is not dict:
        return _COMPACT.encode(value).encode("utf-8")
    return "".join(_C_ENCODE(value, 0)).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Envelope:
    """The request fields around the records: time, token, platform, plugin version."""

    token: str = field(repr=False)
    platform: str
    plugin_version: str

    def _head(self, now_ms: int) -> bytes:
        fields = {
            "time": now_ms,
            "token": self.token,
            "platform": self.platform,
            "pluginVersion": self.plugin_version,
        }
        return to_json(fields)[:-1] + b","  # reopen the object to append params/batch

    def single(self, payload: bytes, now_ms: int) -> bytes:
        return self._head(now_ms) + b'"params":' + payload + b"}"

    def batch(self, payloads: Sequence[bytes], now_ms: int) -> bytes:
        return self._head(now_ms) + b'"batch":[' + b",".join(payloads) + b"]}"

    def batch_overhead(self, now_ms: int) -> int:
        """Bytes of a batch body that are not records or the commas between them."""
        return len(self.batch((), now_ms))


def encode(item: Item) -> EncodedItem | tuple[Item, str]:
    """The item with its JSON bytes, or the item with why it cannot be serialized."""
    if item.body is not None:
        return EncodedItem(item, item.body)
    assert item.payload is not None  # see Item.__post_init__
    try:
        return EncodedItem(item, to_json(item.payload))
    except (TypeError, ValueError) as exc:
        return item, f"record {item.key!r} is not JSON-serializable ({exc}); fix its composition"


def split(
    items: Iterable[Item], *, overhead: int, max_items: int, max_bytes: int
) -> Iterator[Batch]:
    """Group items lazily into batches of at most `max_items` whose body is <= `max_bytes`.

    `overhead` is the envelope's size (see Envelope.batch_overhead). An item too large for
    even a request of its own is not sent: it is reported in the batch it would have joined.
    Only one batch is held at a time, so memory is bounded by the batch size.
    """
    batch = Batch()
    size = overhead
    for item in items:
        encoded = encode(item)
        if isinstance(encoded, tuple) or overhead + len(encoded.body) > max_bytes:
            batch.unsendable.append(_why_unsendable(encoded, overhead, max_bytes))
            if len(batch.unsendable) >= max_items:  # keep memory bounded even if all fail
                yield batch
                batch, size = Batch(), overhead
            continue
        added = len(encoded.body) + (1 if batch.items else 0)  # the comma before it
        if batch.items and (len(batch.items) >= max_items or size + added > max_bytes):
            yield batch
            batch, size, added = Batch(), overhead, len(encoded.body)
        batch.items.append(encoded)
        size += added
    if batch.items or batch.unsendable:
        yield batch


def _why_unsendable(
    encoded: EncodedItem | tuple[Item, str], overhead: int, limit: int
) -> tuple[Item, str]:
    if isinstance(encoded, tuple):
        return encoded
    return encoded.item, _too_large(encoded.item, overhead + len(encoded.body), limit)


def _too_large(item: Item, size: int, limit: int) -> str:
    return (
        f"record {item.key!r} needs a {size:,}-byte request, over Metrilo's {limit:,}-byte "
        "limit; shorten its longest fields (descriptions, option lists) in the mapping"
    )
