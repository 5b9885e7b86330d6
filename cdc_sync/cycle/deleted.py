"""Deleted products on an incremental cycle: from every order the cycle re-reads.

An incremental cycle re-reads an order when its own cursor moved, when it is pending (a failed
send, an order waiting for its customer or a product) and when a tracked child or join row of
it changed (`cycle/follow.py`: a line added to it, seen by the order lines' append key). Any
of them may name a product the shop no longer has, and Metrilo drops an order whose product
it does not know, so the order waits until that product is sent. Deleted products come before
orders in Metrilo's import order: here they are derived from all three kinds of re-read orders
(the changed ones by the cursor, the others by their keys, one query per chunk of keys), so
such an order goes out in the same cycle, after its product.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, Protocol

from cdc_sync.core.records import Readings
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.follow import Follower
from cdc_sync.source import ShopSource, SourceRow
from cdc_sync.state.meta_keys import MetaStore

_ORDERS = Resource.ORDERS


class DeletedState(MetaStore, Protocol):
    """What finding the re-read orders reads of state (`StateStore` is one)."""

    def iter_pending_keys(self, resource: str, chunk: int = 1000) -> Iterator[list[str]]: ...


def deleted_products_of_orders(state: DeletedState, source: ShopSource, since: Any,
                               followed: Follower | None, *,
                               chunk_size: int = 1000) -> Readings:
    """The deleted products the lines of the orders this cycle re-reads name, each once:
    those of the orders changed since `since` first, then those of pending and `followed`
    orders not yet found (the orders' Follower of this cycle: its queries run here, and the
    orders' pass goes over the keys they found; it stores the marks once it delivered them)."""
    changed = source.readings(Resource.DELETED_PRODUCTS, since=since)

    def rows() -> Iterator[SourceRow]:
        seen: set[str] = set()
        yield from _once(changed.rows, seen)
        pending = state.iter_pending_keys(_ORDERS.value, chunk_size)
        followers = followed.changed_keys(set()) if followed is not None else iter(())
        for keys in itertools.chain(pending, followers):
            yield from _once(source.deleted_products_of(keys).rows, seen)

    return Readings(rows(), changed.compose)


def _once(rows: Iterator[SourceRow], seen: set[str]) -> Iterator[SourceRow]:
    """Rows whose key was not yielded before (a product on lines of several chunks' orders)."""
    for row in rows:
        if row.key not in seen:
            seen.add(row.key)
            yield row
