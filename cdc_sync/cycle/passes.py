"""The read passes of one resource's cycle: which shop rows its planner is handed, in order.

A full read (keys and digests only where state holds marks to compare them with, the rows
whose digests changed re-read by key), or an incremental one: the rows changed since the
resource's mark, the pending records, the records whose followed rows changed. Then the
cycle's reconciliation slice, and last the records whose recheck is due. The engine hands the
items on to Metrilo (cycle/delivery.py); this module decides only what is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Protocol

from cdc_sync.core.catalogue import Catalogue
from cdc_sync.core.records import Readings
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.deleted import DeletedState, deleted_products_of_orders
from cdc_sync.cycle.follow import Follower
from cdc_sync.cycle.guests import GuestState, changed_guests
from cdc_sync.cycle.marks import ResourceMarks
from cdc_sync.cycle.planner import Planner, Reread
from cdc_sync.cycle.reconcile import Slice
from cdc_sync.cycle.waiting import SYNCED_IDS_REMEMBERED, SyncedIds
from cdc_sync.metrilo.client import Item
from cdc_sync.source import ShopSource, SourceRow
from cdc_sync.source.keys import KeySpan


class ReadState(GuestState, DeletedState, Protocol):
    """What the read passes read of state (`StateStore` is one): the keys to read again, and
    what deciding guests and deleted products reads."""

    def iter_pending_keys(self, resource: str, chunk: int = 1000, *,
                          untouched_since: datetime | None = None) -> Iterator[list[str]]: ...
    def iter_due_rechecks(self, resource: str, chunk: int = 1000, *,
                          due_by: datetime) -> Iterator[list[str]]: ...


class ReadPasses:
    """Reads a resource's rows for its planner; owns none of the connections it is handed."""

    def __init__(self, *, source: ShopSource, state: ReadState, marks: ResourceMarks,
                 catalogue: Catalogue, chunk_size: int, overlap_seconds: int) -> None:
        self.source = source
        self.state = state
        self.marks = marks
        self.catalogue = catalogue
        self.chunk_size = chunk_size
        self.overlap_seconds = overlap_seconds
        self._followers: dict[Resource, Follower] = {}  # this cycle's (see `follower`)
        # The changed orders' customers state says are synced, as the guests' pass found them
        # (cycle/guests.py): the orders' planner need not ask again (customers are not written
        # after their own pass in a cycle).
        self.synced = SyncedIds(SYNCED_IDS_REMEMBERED)

    def new_cycle(self) -> None:
        """Forget the followers and the synced customers of the cycle before."""
        self._followers.clear()
        self.synced = SyncedIds(SYNCED_IDS_REMEMBERED)

    def known_synced(self, resource: Resource) -> SyncedIds:
        """The customers and products a resource's planner may take as synced from the
        start: for orders, the customers the guests' pass found synced this cycle."""
        return self.synced if resource is Resource.ORDERS else SyncedIds(SYNCED_IDS_REMEMBERED)

    def follower(self, resource: Resource, *, full: bool) -> Follower | None:
        """The resource's joins, children and watches with a cursor (incremental reads only
        happen with the resource's own cursor; without one every cycle reads it whole), one
        Follower a cycle: the deleted products' pass asks for the orders' first, and its
        queries run once (cycle/follow.py)."""
        if self.marks.cursor(resource) is None or not self.source.tracking.trackers(resource):
            return None
        follower = self._followers.get(resource)
        if follower is None:
            follower = self._followers[resource] = Follower(
                self.state, self.source, resource, chunk_size=self.chunk_size,
                overlap_seconds=self.overlap_seconds)
        follower.start(full=full)
        return follower

    def items(self, resource: Resource, planner: Planner, full: bool,
              piece: Slice | None, follower: Follower | None,
              marked: bool = False) -> Iterator[Item]:
        """Every pass of the cycle, through the planner. `marked`: state's marks of the
        resource were made under the planner's seed (`ResourceMarks.marked_under`): only
        then do a full read and a slice read digests only."""
        yield from self._read_items(resource, planner, full, follower, marked)
        if piece is not None and piece.span is not None:
            # After the changed rows: a key both passes read is skipped while in flight, and
            # unchanged by its source mark once acknowledged.
            digested = self._digested(resource, planner, span=piece.span) if marked else None
            if digested is not None:
                yield from planner.items(piece.rows(digested.rows), digested.compose,
                                         reread=self._reread(resource))
            else:
                sliced = self.source.readings(resource, span=piece.span,
                                              late_values=_composed_elsewhere(planner))
                yield from planner.items(piece.rows(sliced.rows), sliced.compose)
        yield from self._recheck_items(resource, planner)

    def _digested(self, resource: Resource, planner: Planner, *,
                  span: KeySpan | None = None) -> Readings | None:
        """The rows' keys and digests only (source/reads.py), where the planner compares
        marks and the rows carry digests; else None."""
        if planner.assume_forced or planner.source_seed is None:
            return None
        return self.source.digest_readings(resource, span=span)

    def _reread(self, resource: Resource) -> Reread:
        """How the planner reads again, with values, the rows whose digests changed."""
        source = self.source

        def reread(keys: Sequence[str]) -> Iterator[SourceRow]:
            return source.rows(resource, keys=keys)

        return reread

    def _read_items(self, resource: Resource, planner: Planner, full: bool,
                    follower: Follower | None, marked: bool) -> Iterator[Item]:
        if full:
            # Digests only when state's marks are under this seed: a first push, or the first
            # full read after a mapping change or an upgrade, would read every row twice.
            digested = self._digested(resource, planner) if marked else None
            if digested is not None:
                yield from planner.items(digested.rows, digested.compose,
                                         reread=self._reread(resource))
                return
            everything = self.source.readings(resource, late_values=_composed_elsewhere(planner))
            yield from planner.items(everything.rows, everything.compose)
            return
        started = datetime.now(UTC)
        changed = self._changed(resource, dry_run=planner.dry_run)
        # A dry run writes nothing, so "not written this cycle" cannot tell which pending
        # records the first pass already counted: remember them (as many as changed rows).
        # Followed dependencies need them too: a record sent this cycle, re-read before its
        # batch is answered, would look unsent and go out twice.
        counted: set[str] | None = set() if planner.dry_run or follower else None
        yield from planner.items(_remembered(changed.rows, counted), changed.compose)
        # Pending records are retried every cycle even if their cursor did not move (a failed
        # send, an order that waited for its customer); not those this cycle just wrote.
        pages = self.state.iter_pending_keys(resource, self.chunk_size, untouched_since=started)
        for keys in _settled(pages, planner):
            pending = self.source.readings(resource, keys=keys)
            rows = (r for r in pending.rows if counted is None or r.key not in counted)
            yield from planner.items(_remembered(rows, counted), pending.compose)
        # Records whose joined, child or watched rows changed, though their own row did not.
        if follower is not None and counted is not None:
            for keys in follower.changed_keys(counted):
                again = self.source.readings(resource, keys=keys)
                yield from planner.items(again.rows, again.compose)

    def _changed(self, resource: Resource, *, dry_run: bool) -> Readings:
        """The rows changed since the resource's mark. Guests: from the changed orders,
        decided against state, not by a query over every order's email (cycle/guests.py); a
        dry run, whose customers new this cycle never reach state, asks the exact query.
        Deleted products: from every order the cycle re-reads (cycle/deleted.py)."""
        since = self.marks.since(resource)
        entry = self.catalogue.entry(resource)
        if resource is Resource.DELETED_PRODUCTS and entry is not None:
            return deleted_products_of_orders(
                self.state, self.source, since, self.follower(Resource.ORDERS, full=False),
                chunk_size=self.chunk_size)
        if resource is Resource.GUEST_CUSTOMERS and entry is not None:
            guests = changed_guests(self.state, self.source, since, chunk_size=self.chunk_size,
                                    customers=entry.basis is not None, exact=dry_run,
                                    synced=self.synced)
            if guests is not None:
                return guests
        return self.source.readings(resource, since=since)

    def _recheck_items(self, resource: Resource, planner: Planner) -> Iterator[Item]:
        """Records accepted after an attempt with an unknown outcome, once their grace is over:
        sent again as they are now, so a late-applied older attempt does not have the last word.
        """
        if planner.dry_run or planner.stopped:
            return
        due = self.state.iter_due_rechecks(resource, self.chunk_size, due_by=datetime.now(UTC))
        for keys in due:
            again = self.source.readings(resource, keys=keys)
            yield from planner.items(again.rows, again.compose, resend_known=True)


def _settled(pages: Iterator[list[str]], planner: Planner) -> Iterator[list[str]]:
    """Pages of pending keys, each read once the planner's pending marks so far are in state
    (its writes go through the delivery's writer thread): the walk leaves out what this
    cycle wrote, so an order that waited is not planned and counted twice."""
    while True:
        planner.writes.settle()
        page = next(pages, None)
        if page is None:
            return
        yield page


def _remembered(rows: Iterable[SourceRow], keys: set[str] | None) -> Iterator[SourceRow]:
    for row in rows:
        if keys is not None:
            keys.add(row.key)
        yield row


def _composed_elsewhere(planner: Planner) -> bool:
    """Whether the planner's rows may be composed in a worker process: then a full read
    leaves their values to be converted there (`ShopSource.rows`, late_values)."""
    return planner.composing is not None and planner.composing.workers > 0
