"""A composed record reduced to what planning and sending it need (pure, on the hot path).

Composing, validating, encoding and fingerprinting a record depend on nothing but the source
row and the mapping, so they can run anywhere: in the cycle's own thread, or in a worker
process (`cycle/composing.py`) while the cycle reads the next chunk. Either way the same
function, `prepare_rows`, turns rows into `Prepared` records, which carry only what the
planner and the client use: the canonical JSON (fingerprint, request body, kept payload), the
record's identity and tags at Metrilo, why it must not be sent, and what an order waits on.
The payload itself is kept only when asked for (a dry run's samples).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple, Protocol, TypeVar

from cdc_sync.core.deferred import Deferred
from cdc_sync.core.diff import SourceHasher, canonical_json, fingerprint_json
from cdc_sync.core.resources import Payload, Resource, SourceRecord
from cdc_sync.core.validate import reasons_to_hold


class Prepared(NamedTuple):
    """A composed record as the planner needs it (a tuple: it crosses a process boundary)."""

    key: str
    body: bytes  # canonical JSON: the fingerprint's input, the request body, a kept payload
    fingerprint: str
    metrilo_id: str | None
    tags: tuple[str, ...]
    reasons: tuple[str, ...]  # composition problems and the contract's: why it is not sent
    email: str | None  # the customer an order waits for (str of a truthy `email`)
    product_ids: tuple[str, ...]  # the products an order waits for, in line order
    source_fingerprint: str | None
    kept: str | None  # what state keeps instead of the body (`SourceRecord.kept`)
    payload: Payload | None  # only when asked for (samples of a dry run)


UNKNOWN: Final = ""
"""A row's source fingerprint not computed yet (`prepare_rows` computes it); never a
fingerprint (hex digits), and equal to itself after pickling, unlike a sentinel object."""


class Shape(NamedTuple):
    """The labels of a parent row and, per child collection, its name and its rows' labels,
    and the conversions still due on its values (what `source.stream.RowShape` holds, as a
    plain tuple)."""

    labels: tuple[str, ...]
    children: tuple[tuple[str, tuple[str, ...]], ...]
    deferred: Deferred | None = None


class ComposableRow(Protocol):
    """What composing reads of a row: `source.stream.SourceRow`, or `PlainRow` in a worker."""

    @property
    def key(self) -> str: ...
    @property
    def raw(self) -> Sequence[Any]: ...
    @property
    def kids(self) -> Sequence[Sequence[Sequence[Any]]]: ...
    @property
    def repeats(self) -> int: ...
    @property
    def shape(self) -> Any: ...  # labels, each child collection's name and labels, deferred
    @property
    def read_raw(self) -> Sequence[Any]: ...  # as read: `shape.deferred` still to convert
    @property
    def read_kids(self) -> Sequence[Sequence[Sequence[Any]]]: ...


class PlainRow:
    """A source row rebuilt from plain values in a worker process; composes like the
    `SourceRow` it was read as (same attributes, same `values`). Its values are converted
    (`Deferred.finish` before it is made), so it is read as it is."""

    __slots__ = ("key", "kids", "raw", "repeats", "shape")

    def __init__(self, key: str, raw: Sequence[Any], kids: Sequence[Sequence[Sequence[Any]]],
                 shape: Shape, repeats: int) -> None:
        self.key = key
        self.raw = raw
        self.kids = kids
        self.shape = shape
        self.repeats = repeats

    @property
    def read_raw(self) -> Sequence[Any]:
        return self.raw

    @property
    def read_kids(self) -> Sequence[Sequence[Sequence[Any]]]:
        return self.kids

    @property
    def values(self) -> dict[str, Any]:
        return dict(zip(self.shape.labels, self.raw))  # noqa: B905 - one select, same length


R = TypeVar("R", bound=ComposableRow)


def metrilo_id(resource: Resource, payload: Mapping[str, Any]) -> str | None:
    """The record's identity at Metrilo: customers by email, everything else by id."""
    name = "email" if resource in (Resource.CUSTOMERS, Resource.GUEST_CUSTOMERS) else "id"
    value = payload.get(name)
    return None if value is None else str(value)


def record_tags(payload: Mapping[str, Any]) -> tuple[str, ...]:
    tags = payload.get("tags")
    return tuple(str(t) for t in tags) if isinstance(tags, list) else ()


def prepare(resource: Resource, record: SourceRecord, source_fp: str | None, *,
            with_payload: bool = False) -> Prepared:
    """The record encoded once, validated against the contract, its dependencies listed."""
    payload = record.payload
    body = canonical_json(payload)
    email = payload.get("email")
    held = reasons_to_hold(resource.endpoint, payload)
    # Made as a tuple, in Prepared's field order: the keyword constructor of a NamedTuple
    # costs 2.6 us against 0.3 (one record in a push).
    return _new_prepared(Prepared, (
        record.key,
        body,
        fingerprint_json(body),
        metrilo_id(resource, payload),
        record_tags(payload),
        (*record.problems, *held),
        str(email) if email else None,
        _product_ids(payload),
        source_fp,
        record.kept,
        payload if with_payload else None,
    ))


_new_prepared = tuple.__new__


def prepare_rows(compose: Callable[[R], SourceRecord], resource: Resource, seed: bytes | None,
                 rows: Sequence[R], fingerprints: Sequence[str | None], *,
                 with_payload: bool = False) -> list[Prepared]:
    """Compose and prepare each row, in order. `fingerprints` are the rows' source
    fingerprints; an UNKNOWN one is computed here (under `seed`; None without one)."""
    hasher = None if seed is None else SourceHasher(seed)
    prepared = []
    for row, source_fp in zip(rows, fingerprints, strict=True):
        if source_fp == UNKNOWN:
            source_fp = None if hasher is None else hasher(row.raw, row.kids)
        prepared.append(prepare(resource, compose(row), source_fp, with_payload=with_payload))
    return prepared


def _product_ids(payload: Payload) -> tuple[str, ...]:
    lines = payload.get("products")
    if not lines:
        return ()
    return tuple(str(line["productId"]) for line in lines
                 if isinstance(line, dict) and line.get("productId") is not None)
