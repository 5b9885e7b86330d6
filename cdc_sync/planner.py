"""Decide, chunk by chunk, what each composed record needs: nothing, sending, rejecting, waiting.

The stream of records is compared with the state DB one chunk at a time (one state query per
chunk, never one per record, never the whole state in memory). Records that fail local
validation are rejected with their reasons; orders whose customer or products Metrilo has not
accepted wait (as pending) instead of being sent and silently dropped by Metrilo.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cdc_sync.diff import Change, classify, fingerprint
from cdc_sync.metrilo import Item
from cdc_sync.report import ResourceReport, Sample
from cdc_sync.resources import Resource, SourceRecord
from cdc_sync.state import Outcome, StateRow, StateStore, Status
from cdc_sync.validate import validate

SAMPLES_PER_CHANGE = 3

_COUNT_OF_CHANGE = {
    Change.NEW: "new",
    Change.CHANGED: "changed",
    Change.UNCHANGED: "unchanged",
    Change.RETRY: "retried",
    Change.FORCED: "forced",
}


def metrilo_id(resource: Resource, payload: dict[str, Any]) -> str | None:
    """The record's identity at Metrilo: customers by email, everything else by id."""
    name = "email" if resource in (Resource.CUSTOMERS, Resource.GUEST_CUSTOMERS) else "id"
    value = payload.get(name)
    return None if value is None else str(value)


def record_tags(payload: dict[str, Any]) -> tuple[str, ...]:
    tags = payload.get("tags")
    return tuple(str(t) for t in tags) if isinstance(tags, list) else ()


@dataclass(frozen=True, slots=True)
class InFlight:
    """What the engine must remember about a sent record until Metrilo answers."""

    outcome: Outcome
    removed_tags: tuple[str, ...]


@dataclass
class Dependencies:
    """Which resources must have accepted an order's customer and products first."""

    customer_resources: tuple[str, ...] = ()
    product_resources: tuple[str, ...] = ()
    # Whether every email / product id is expected to be in state (guests and deleted
    # products on): then an unknown one means "not delivered yet", so the order waits.
    customers_complete: bool = False
    products_complete: bool = False


@dataclass
class Planner:
    """Turns composed records into the items to send, recording rejects and waits as it goes."""

    resource: Resource
    state: StateStore
    report: ResourceReport
    dry_run: bool = False
    chunk_size: int = 1000
    dependencies: Dependencies | None = None
    on_chunk: Callable[[], None] | None = None
    stop: threading.Event | None = None
    stopped: bool = False
    inflight: dict[str, InFlight] = field(default_factory=dict)
    seen_live: int = 0
    _last_key: str | None = None

    def items(self, records: Iterable[SourceRecord]) -> Iterator[Item]:
        """The records to send, lazily; each chunk's rejects and waits are written first."""
        for chunk in _chunks(records, self.chunk_size):
            if self.stop is not None and self.stop.is_set():
                self.stopped = True
                return
            yield from self._plan_chunk(chunk)
            if self.on_chunk is not None:
                self.on_chunk()

    def _plan_chunk(self, chunk: list[SourceRecord]) -> Iterator[Item]:
        counts = self.report.counts
        rows = self.state.lookup(self.resource, [r.key for r in chunk])
        rejects: list[Outcome] = []
        candidates: list[tuple[SourceRecord, Outcome, StateRow | None]] = []
        for record in chunk:
            counts.scanned += 1
            duplicate = record.key == self._last_key
            self._last_key = record.key
            row = rows.get(record.key)
            if row is not None and row.status is not Status.GONE and not duplicate:
                self.seen_live += 1
            outcome = self._outcome(record)
            change = classify(outcome.fingerprint, row)
            counts.bump(_COUNT_OF_CHANGE[change])
            if change is Change.UNCHANGED and not duplicate:
                continue
            reasons = self._reasons(record, duplicate)
            if reasons:
                rejects.append(_with_reason(outcome, "; ".join(reasons)))
            else:
                candidates.append((record, outcome, row))
            self._sample(change, record)
        sendable, waiting = self._split_waiting(candidates)
        counts.rejected += len(rejects)
        counts.waiting += len(waiting)
        if not self.dry_run:
            self.state.mark_rejected(self.resource, rejects)
            self.state.mark_pending(self.resource, waiting)
        for record, outcome, row in sendable:
            removed = _removed_tags(row, outcome.tags)
            if removed:
                counts.untagged += 1
            self.inflight[record.key] = InFlight(outcome, removed)
            yield Item(record.key, record.payload)

    def _outcome(self, record: SourceRecord) -> Outcome:
        return Outcome(
            key=record.key,
            metrilo_id=metrilo_id(self.resource, record.payload),
            fingerprint=fingerprint(record.payload),
            tags=record_tags(record.payload),
        )

    def _reasons(self, record: SourceRecord, duplicate: bool) -> list[str]:
        if duplicate:
            return [
                f"duplicate key {record.key!r} from the source: the key must be unique "
                "(fix `key:` or the query in mappings.yaml)"
            ]
        return [*record.problems, *validate(self.resource.endpoint, record.payload)]

    def _split_waiting(
        self, candidates: list[tuple[SourceRecord, Outcome, StateRow | None]]
    ) -> tuple[list[tuple[SourceRecord, Outcome, StateRow | None]], list[Outcome]]:
        if self.dependencies is None or not candidates:
            return candidates, []
        blockers = _Blockers(self.state, self.dependencies, [c[0].payload for c in candidates])
        sendable, waiting = [], []
        for candidate in candidates:
            why = blockers.why_waiting(candidate[0].payload)
            if why:
                waiting.append(_with_reason(candidate[1], why))
            else:
                sendable.append(candidate)
        return sendable, waiting

    def _sample(self, change: Change, record: SourceRecord) -> None:
        if not self.dry_run:
            return
        name = _COUNT_OF_CHANGE[change]
        if sum(1 for s in self.report.samples if s.change == name) < SAMPLES_PER_CHANGE:
            self.report.samples.append(Sample(name, record.key, record.payload))


class _Blockers:
    """The dependency status of one chunk of orders, fetched with two state queries."""

    def __init__(self, state: StateStore, deps: Dependencies, orders: Sequence[dict[str, Any]]):
        self.deps = deps
        emails = {str(o["email"]) for o in orders if o.get("email")}
        products = {
            str(line["productId"])
            for o in orders
            for line in o.get("products") or ()
            if isinstance(line, dict) and line.get("productId") is not None
        }
        self.customers = state.dependency_status(deps.customer_resources, emails) if emails else {}
        self.products = (
            state.dependency_status(deps.product_resources, products) if products else {}
        )

    def why_waiting(self, order: dict[str, Any]) -> str | None:
        email = order.get("email")
        if email:
            why = _blocked("customer", str(email), self.customers, self.deps.customers_complete)
            if why:
                return why
        for line in order.get("products") or ():
            if isinstance(line, dict) and line.get("productId") is not None:
                why = _blocked(
                    "product", str(line["productId"]), self.products, self.deps.products_complete
                )
                if why:
                    return why
        return None


def _blocked(kind: str, ident: str, statuses: dict[str, Status], complete: bool) -> str | None:
    status = statuses.get(ident)
    if status is Status.SYNCED:
        return None
    if status is None:
        if not complete:
            return None
        return f"waiting for {kind} {ident!r}, which Metrilo has not received yet"
    return f"waiting for {kind} {ident!r}, which is {status.value} (see `cdc-sync status`)"


def _removed_tags(row: StateRow | None, tags: tuple[str, ...]) -> tuple[str, ...]:
    if row is None or not row.tags:
        return ()
    current = set(tags)
    return tuple(t for t in row.tags if t not in current)


def _with_reason(outcome: Outcome, reason: str) -> Outcome:
    return Outcome(outcome.key, outcome.metrilo_id, outcome.fingerprint, outcome.tags, reason)


def _chunks(records: Iterable[SourceRecord], size: int) -> Iterator[list[SourceRecord]]:
    chunk: list[SourceRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
