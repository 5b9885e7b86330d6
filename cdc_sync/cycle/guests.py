"""Guest customers on an incremental cycle, from the orders changed since the mark alone.

The orders changed since the guests' mark are read as guest rows (an index range on the
orders' cursor, `ShopSource.changed_guest_orders`), an email's orders together, its first
order first. Per chunk of emails, three state queries say whether a customer has the email
(state's customers, synced earlier in the same cycle), whether a live guest exists and which
first order it was made from; `core.guests.decide` then sends the guest as the earliest
changed order makes it, skips it, or leaves it to the exact set-based query, narrowed to the
few emails state cannot decide (`ShopSource.readings(keys=...)`). No scan of every order's
email, no scan of every customer's: what they alone would see is settled by the guests' full
read once per reconciliation window (core/guests.py). A dry run asks the exact query for every
changed email (a chunk's emails at a time): it leaves state as it was, so state cannot know the
customers it found new.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterator, Sequence
from typing import Any, Protocol

from cdc_sync.core.guests import Basis, Verdict, decide
from cdc_sync.core.records import Readings
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.waiting import SyncedIds
from cdc_sync.source import ShopSource, SourceRow
from cdc_sync.state import StateRow, Status

_GUESTS = Resource.GUEST_CUSTOMERS.value
_CUSTOMERS = (Resource.CUSTOMERS.value,)
_Group = tuple[str, list[SourceRow]]  # an email and its changed orders, the first one first


class GuestState(Protocol):
    """What deciding guests reads of state (`StateStore` is one)."""

    def lookup(self, resource: str, keys: Sequence[str]) -> dict[str, StateRow]: ...
    def payloads(self, resource: str, keys: Sequence[str]) -> dict[str, str]: ...
    def dependency_status(
        self, resources: Sequence[str], metrilo_ids: Collection[str]
    ) -> dict[str, Status]: ...


def changed_guests(state: GuestState, source: ShopSource, since: Any, *, customers: bool,
                   chunk_size: int = 1000, exact: bool = False,
                   synced: SyncedIds | None = None) -> Readings | None:
    """The guest rows an incremental cycle must plan, in key order; None when guests are
    not read this way (no cursor on orders): then the caller derives them by query.
    `customers`: whether customers are mapped (an email they have is no guest). `exact`:
    every changed email goes to the exact query, state decides nothing (a dry run: the
    customers it found new this cycle never reach state, so state would take their emails
    for guests'). `synced`: where the changed orders' emails state holds synced as
    customers' are remembered (the orders' planner then need not ask for them again)."""
    changed = source.changed_guest_orders(since)
    if changed is None:
        return None
    deciding = _Deciding(state, source, changed, customers and not exact, exact, synced)
    return Readings(deciding.rows(chunk_size), changed.compose)


class _Deciding:
    def __init__(self, state: GuestState, source: ShopSource, changed: Readings,
                 customers: bool, exact: bool, synced: SyncedIds | None = None) -> None:
        self.state = state
        self.source = source
        self.changed = changed
        self.customers = customers
        self.exact = exact
        self.synced = synced

    def rows(self, chunk_size: int) -> Iterator[SourceRow]:
        try:
            groups = ((key, list(rows)) for key, rows
                      in itertools.groupby(self.changed.rows, key=_key))
            while chunk := list(itertools.islice(groups, chunk_size)):
                yield from self._chunk(chunk)
        finally:
            close = getattr(self.changed.rows, "close", None)
            if close is not None:
                close()

    def _chunk(self, chunk: list[_Group]) -> Iterator[SourceRow]:
        keys = [key for key, _ in chunk]
        if self.exact:
            yield from self.source.readings(Resource.GUEST_CUSTOMERS, keys=keys).rows
            return
        taken = self.state.dependency_status(_CUSTOMERS, keys) if self.customers else {}
        if self.synced is not None:
            self.synced.remember(self.synced.customers, taken)
        # A customer row in any state but gone has the email (synced, pending or rejected: the
        # query's anti-join would see its row). Most changed orders are customers': only the
        # others' guests are looked up.
        free = [(key, rows) for key, rows in chunk if taken.get(key, Status.GONE) is Status.GONE]
        if not free:
            return
        keys = [key for key, _ in free]
        known = self.state.lookup(_GUESTS, keys)
        kept = self.state.payloads(_GUESTS, keys)
        send: list[SourceRow] = []
        exact: list[str] = []
        for key, rows in free:
            row = known.get(key)
            live = row is not None and row.status is not Status.GONE
            if not live:  # a new guest: made from the earliest changed order
                send.append(rows[0])
                continue
            verdict = decide([self._basis(r) for r in rows], Basis.parse(kept.get(key)))
            if verdict is Verdict.SEND:
                send.append(rows[0])
            elif verdict is Verdict.EXACT:
                exact.append(key)
        if exact:
            send.extend(self.source.readings(Resource.GUEST_CUSTOMERS, keys=exact).rows)
        # Both lists are within this chunk's keys: sorted, they follow the previous chunk's.
        yield from sorted(send, key=_key)

    def _basis(self, row: SourceRow) -> Basis:
        basis = Basis.parse(self.changed.compose(row).kept)
        assert basis is not None, "guest rows keep their first order"
        return basis


def _key(row: SourceRow) -> str:
    return row.key
