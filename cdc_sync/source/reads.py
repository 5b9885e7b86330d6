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

from collections.abc import Iterator, Sequence
from typing import Any

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


def values_rows(engine: sa.Engine, plan: ResourcePlan, dialect: str, *, batch: int,
                since: Any = None, keys: Sequence[str] | None = None,
                span: KeySpan | None = None, digests: bool = False) -> Iterator[SourceRow]:
    """Source rows with their values (and digests), children merged, in key order."""
    doing = f"reading {plan.name} from {plan.relation.label}"
    bounded = keys is not None  # a chunk of keys: fetched at once (stream.stream)
    parents = stream(engine, rows_select(plan, dialect, since=since, keys=keys, span=span,
                                         digests=digests), doing=doing, batch=batch,
                     bounded=bounded)
    children: dict[str, Rows] = {
        name: stream(engine, child_select(plan, child, dialect, since=since, keys=keys,
                                          span=span, digests=digests),
                     doing=f"reading {plan.name}.children.{name} from {child.relation.label}",
                     batch=batch, bounded=bounded)
        for name, child in plan.children.items()
    }
    for name, aggregate in plan.aggregates.items():
        stmt = aggregate_select(plan, aggregate, dialect, since=since, keys=keys, span=span,
                                digests=digests)
        children[name] = stream(engine, stmt, batch=batch, doing=_aggregates(plan, name),
                                bounded=bounded)
    return merge(parents, plan.key_names, plan.kinds, children, resource=plan.name,
                 hashed=plan.aggregates.keys())


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
