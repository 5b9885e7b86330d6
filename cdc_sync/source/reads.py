"""The streams of one direct resource's read, merged: with values, or digests only.

A values read streams the resource's rows and each child collection's (and aggregate's) rows,
with each row's md5 beside its values when the database computes digests (digests.py). A
digest-only read streams just each row's key and md5, and per parent each child collection's
count and sum: what a no-change cycle needs to find every mark in state unchanged, without
moving or parsing a single value. Both merge into `SourceRow`s with the same `digest` text for
an unchanged shop; the rows a digest-only read finds changed are read again with values, by
key (`cycle/planner.Planner.items`, `reread`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from cdc_sync.source.keys import KeySpan
from cdc_sync.source.plan import ResourcePlan
from cdc_sync.source.query import (
    aggregate_select,
    child_digest_select,
    child_select,
    key_digest_select,
    rows_select,
)
from cdc_sync.source.stream import Rows, SourceRow, merge, stream

if TYPE_CHECKING:
    from cdc_sync.source.query import AnySelect


# An incremental cycle's read of the rows changed since its mark is small (the rows of one
# cycle interval), and streaming its parents beside each child collection held a connection
# per stream: the orders' read and its two children took three, so a one-shot `cdc-sync sync`
# opened two more than the check before it had (~5 ms each, a backend each on the server).
# Parents up to this many chunks are read ahead whole, then their children, each fetched whole,
# one after the other on the one connection; a wider read (after a long stop) streams as a
# full read.
SMALL_SINCE_CHUNKS = 4

ChildRead = Callable[..., "AnySelect"]
"""One child collection's (or aggregate's) statement, narrowed as its keywords say (`since`,
`keys`, `span`)."""


def values_rows(engine: sa.Engine, plan: ResourcePlan, dialect: str, *, batch: int,
                since: Any = None, keys: Sequence[str] | None = None,
                span: KeySpan | None = None, digests: bool = False,
                late_values: bool = False) -> Iterator[SourceRow]:
    """Source rows with their values (and digests), children merged, in key order.

    `late_values`: the rows are composed elsewhere (a compose worker). Then a full read or a
    slice with digests may leave the values it does not read itself (all but the keys) to be
    converted there (core/deferred.py; the driver decides which: PyMySQL its Decimals and
    datetimes): its rows are marked by their digests. Not a read by key or since a mark:
    those are an incremental cycle's few rows, composed in the cycle's thread, where
    converting them after reading costs more than converting them as read (a first push
    composed in the cycle's thread: 4-6 us a record more)."""
    if since is not None and keys is None and span is None and (plan.children
                                                                or plan.aggregates):
        return _since_rows(engine, plan, dialect, batch=batch, since=since, digests=digests)
    bounded = keys is not None  # a chunk of keys: fetched at once (stream.stream)
    deferring = late_values and digests and since is None and keys is None
    parents = stream(engine, rows_select(plan, dialect, since=since, keys=keys, span=span,
                                         digests=digests), doing=_reading(plan), batch=batch,
                     bounded=bounded, deferrable=_values_of(plan) if deferring else ())
    children = {name: stream(engine, read(since=since, keys=keys, span=span), doing=doing,
                             batch=batch, bounded=bounded,
                             deferrable=_child_values(plan, name) if deferring else ())
                for name, (read, doing) in _child_reads(plan, dialect, digests).items()}
    return merge(parents, plan.key_names, plan.kinds, children, resource=plan.name,
                 hashed=plan.aggregates.keys())


def _since_rows(engine: sa.Engine, plan: ResourcePlan, dialect: str, *, batch: int,
                since: Any, digests: bool) -> Iterator[SourceRow]:
    """The rows changed since `since` with their children. Few of them (SMALL_SINCE_CHUNKS):
    the parents read ahead whole, then each child collection's rows of the same changed
    parents, fetched whole and its connection handed back before the next (driver_batches,
    `bounded`). More: every stream at once, as `values_rows` reads."""
    parents = stream(engine, rows_select(plan, dialect, since=since, digests=digests),
                     doing=_reading(plan), batch=batch)
    try:
        ahead = list(itertools.islice(parents.rows, SMALL_SINCE_CHUNKS * batch + 1))
    except BaseException:
        parents.close()
        raise
    if not ahead:
        return
    small = len(ahead) <= SMALL_SINCE_CHUNKS * batch
    # Small: the parents' stream ended, its connection is back in the pool for the children.
    # Their statements are the same either way (the children of the rows changed since the
    # mark: no key list to build, bind and parse), as streamed reads beside the parents' stream
    # run: a parent changed between the statements brings rows the merge skips as orphans.
    rows = (Rows(parents.labels, iter(ahead)) if small else
            Rows(parents.labels, itertools.chain(ahead, parents.rows), parents.source))
    children = {name: stream(engine, read(since=since), doing=doing, batch=batch,
                             bounded=small)
                for name, (read, doing) in _child_reads(plan, dialect, digests).items()}
    yield from merge(rows, plan.key_names, plan.kinds, children, resource=plan.name,
                     hashed=plan.aggregates.keys())


def _child_reads(plan: ResourcePlan, dialect: str,
                 digests: bool) -> dict[str, tuple[ChildRead, str]]:
    """Each child collection's and aggregate's statement, and what reading it does."""
    reads: dict[str, tuple[ChildRead, str]] = {
        name: (functools.partial(child_select, plan, child, dialect, digests=digests),
               f"reading {plan.name}.children.{name} from {child.relation.label}")
        for name, child in plan.children.items()
    }
    for name, aggregate in plan.aggregates.items():
        reads[name] = (functools.partial(aggregate_select, plan, aggregate, dialect,
                                         digests=digests), _aggregates(plan, name))
    return reads


def _values_of(plan: ResourcePlan) -> list[int]:
    """The positions of a row's values other than its key (the merge reads the key)."""
    keys = set(plan.key_names)
    return [at for at, label in enumerate(plan.values) if label not in keys]


def _child_values(plan: ResourcePlan, name: str) -> range:
    """A child collection's values: first in its rows, then its number and parent key (the
    merge reads them); none of an aggregate's (its md5 is read by the merge)."""
    child = plan.children.get(name)
    return range(len(child.values)) if child is not None else range(0)


def _reading(plan: ResourcePlan) -> str:
    return f"reading {plan.name} from {plan.relation.label}"


def digest_rows(engine: sa.Engine, plan: ResourcePlan, dialect: str, *, batch: int,
                span: KeySpan | None = None) -> Iterator[SourceRow]:
    """Each row's key and digest only (no values: never composed), in key order."""
    what = f"{plan.name} digests"
    parents = stream(engine, key_digest_select(plan, dialect, span=span), batch=batch,
                     doing=f"reading {what} from {plan.relation.label}")
    children: dict[str, Rows] = {
        name: stream(engine, child_digest_select(plan, child, dialect, span=span), batch=batch,
                     doing=f"reading {what} of children.{name} from {child.relation.label}")
        for name, child in plan.children.items()
    }
    for name, aggregate in plan.aggregates.items():
        stmt = aggregate_select(plan, aggregate, dialect, span=span, values=False)
        children[name] = stream(engine, stmt, batch=batch, doing=_aggregates(plan, name))
    return merge(parents, plan.key_names, plan.kinds, children, resource=plan.name,
                 hashed=plan.aggregates.keys())


def _aggregates(plan: ResourcePlan, name: str) -> str:
    child = plan.aggregates[name].child
    return (f"reading the aggregates of {plan.name}.children.{child.name} from "
            f"{child.relation.label}")
