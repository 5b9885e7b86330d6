"""Decide, chunk by chunk, what each composed record needs: nothing, sending, rejecting, waiting.

The stream of source rows is compared with the state DB one chunk at a time (one state query per
chunk, never one per record, never the whole state in memory). A row whose raw values have the
source fingerprint state keeps for its synced record is unchanged and is not even composed; the
others are composed, fingerprinted as records and classified. Records that fail local
validation are rejected with their reasons; orders whose customer or products Metrilo has not
accepted wait (as pending) instead of being sent and silently dropped by Metrilo (waiting.py).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from cdc_sync.core.diff import Change, DigestHasher, SourceHasher, classify
from cdc_sync.core.prepare import UNKNOWN, Prepared, metrilo_id, record_tags
from cdc_sync.core.report import ResourceReport, Sample
from cdc_sync.core.resources import Payload, Resource, SourceRecord
from cdc_sync.cycle.composing import Composing, Job, Ticket
from cdc_sync.cycle.planwrites import PlanWrites
from cdc_sync.cycle.waiting import (
    SYNCED_IDS_REMEMBERED,
    Blockers,
    Dependencies,
    DependencyState,
    SyncedIds,
)
from cdc_sync.metrilo.client import Item
from cdc_sync.source.stream import SourceRow
from cdc_sync.state import Outcome, SourceMark, StateRow, Status

SAMPLES_PER_CHANGE = 3

_COUNT_OF_CHANGE = {
    Change.NEW: "new",
    Change.CHANGED: "changed",
    Change.UNCHANGED: "unchanged",
    Change.RETRY: "retried",
    Change.FORCED: "forced",
}


__all__ = ["Dependencies", "InFlight", "PlanState", "Planner", "Reread", "metrilo_id",
           "record_tags"]

Reread = Callable[[Sequence[str]], Iterable[SourceRow]]
"""Source rows with values for these keys, in key order (the engine's: `ShopSource.rows`)."""


@dataclass(frozen=True, slots=True)
class InFlight:
    """What the engine must remember about a sent record until Metrilo answers."""

    outcome: Outcome
    removed_tags: tuple[str, ...]


_Candidate = tuple[Prepared, Outcome, "StateRow | None"]
"""A record to send (or to wait): itself, its outcome-to-be, its state row."""

_Chunk = tuple[Ticket, list[bool]]
"""A chunk's rows being composed, and for each whether its key repeats the previous row's
(only one row may have a key)."""


class PlanState(DependencyState, Protocol):
    """What planning a chunk reads and writes of state (`StateStore` is one)."""

    def lookup(self, resource: str, keys: Sequence[str]) -> dict[str, StateRow]: ...
    def source_marks(self, resource: str, keys: Sequence[str]) -> dict[str, SourceMark]: ...
    def record_unchanged(self, resource: str, outcomes: Sequence[Outcome]) -> None: ...
    def mark_rejected(self, resource: str, outcomes: Sequence[Outcome]) -> None: ...
    def mark_pending(self, resource: str, outcomes: Sequence[Outcome]) -> None: ...


@dataclass
class Planner:
    """Turns composed records into the items to send, recording rejects and waits as it goes."""

    resource: Resource
    state: PlanState
    report: ResourceReport
    dry_run: bool = False
    chunk_size: int = 1000
    dependencies: Dependencies | None = None
    on_chunk: Callable[[], None] | None = None
    stop: threading.Event | None = None
    # Set by the engine when Metrilo stopped taking records: yield nothing more, the rest
    # waits for the next cycle (unlike `stop`, the resource is not reported as stopped).
    halt: threading.Event | None = None
    # Keep each accepted record's payload in state (orders with `on_delete: status`), or what
    # the record says to keep instead (`SourceRecord.kept`: a guest's first order).
    keep_payloads: bool = False
    # A dry-run resync: rows are not really forced, so count every known record as forced.
    assume_forced: bool = False
    # A mapping preview: what changed, whatever an unfinished resync forced.
    ignore_forced: bool = False
    # The key of source fingerprints (diff.source_seed); None composes every row.
    source_seed: bytes | None = None
    # Where rows are composed (the engine's: a worker process may do it); None: here.
    composing: Composing | None = None
    stopped: bool = False
    seen_live: int = 0
    # Dependencies state said were synced, for the rest of this planner's life (one resource
    # of one cycle: the resources they belong to are not written meanwhile). The engine hands
    # the orders' planner what the guests' pass found of the changed orders' customers.
    synced: SyncedIds = field(default_factory=lambda: SyncedIds(SYNCED_IDS_REMEMBERED))
    # Where its rejects, waits and unchanged records' marks are written: state, or the
    # delivery's writer thread once it runs (`Delivery.deliver`; cycle/planwrites.py).
    writes: PlanWrites = field(init=False)
    # Records sent and not yet answered by Metrilo, by key (see `answered`).
    _inflight: dict[str, InFlight] = field(default_factory=dict)
    # Records answered by Metrilo whose outcome the delivery's writer thread has not
    # committed yet (`answered`, `written`): state still holds what they were before they were
    # sent, so a later pass of the cycle reading them again must skip them, as if in flight.
    # Keys are added here and discarded by the writer thread (single set operations).
    _unwritten: set[str] = field(default_factory=set)
    _last_key: str | None = None

    def __post_init__(self) -> None:
        self.writes = PlanWrites(self.state)

    def items(
        self, rows: Iterable[SourceRow], compose: Callable[[SourceRow], SourceRecord],
        *, resend_known: bool = False, reread: Reread | None = None,
    ) -> Iterator[Item]:
        """The records to send, lazily; each chunk's rejects and waits are written first.

        Call once per pass over a key-ordered stream (duplicate keys are found by order).
        `resend_known` sends every known record of this pass, changed or not (the engine's
        recheck pass: an earlier attempt's outcome is unknown, so Metrilo may hold an older
        version). `reread`: the rows are digest-only (`ShopSource.digests`); those whose
        mark does not match are read again with values through it, a chunk at a time.

        Pipelined: a chunk's changed rows are submitted for composing (perhaps to a worker
        process), then the previous chunk is planned while they are composed. What a chunk's
        planning reads of state or of the records in flight is read after the previous
        chunk's records were handed out, as without a pipeline.
        """
        self._last_key = None
        composing = self.composing or Composing(0)
        ahead: deque[_Chunk] = deque()  # submitted, in order, not planned yet
        try:
            for chunk in _chunks(rows, self.chunk_size):
                if self.stop is not None and self.stop.is_set():
                    self.stopped = True
                    return
                if self._halted():
                    return
                job, duplicates = self._changed_rows(chunk, compose, resend_known, reread)
                ahead.append((composing.submit(job), duplicates))
                if len(ahead) >= composing.depth:
                    ticket, earlier = ahead.popleft()
                    yield from self._planned(ticket.result(), earlier, resend_known)
            while ahead:
                ticket, earlier = ahead.popleft()
                yield from self._planned(ticket.result(), earlier, resend_known)
        finally:
            for ticket, _ in ahead:
                ticket.discard()

    def _planned(self, prepared: list[Prepared], duplicates: list[bool],
                 resend_known: bool) -> Iterator[Item]:
        for item in self._plan_chunk(prepared, duplicates, resend_known):
            if self._halted():
                return
            yield item
        if self.on_chunk is not None:
            self.on_chunk()

    def answered(self, key: str) -> InFlight:
        """Metrilo answered for the record sent under `key`: what was remembered of it when
        it was sent (its outcome-to-be, the tags to remove), forgotten from now on."""
        entry = self._inflight.pop(key)
        self._unwritten.add(key)
        return entry

    def written(self, keys: Iterable[str]) -> None:
        """The outcomes of these answered records are committed to state (the writer thread):
        from now on a later pass compares them with state as usual."""
        self._unwritten.difference_update(keys)

    def _sent_meanwhile(self, key: str) -> bool:
        """Sent this cycle and not yet in state: in flight, or answered and not written."""
        return key in self._inflight or key in self._unwritten

    def _halted(self) -> bool:
        return self.halt is not None and self.halt.is_set()

    def _changed_rows(
        self, chunk: list[SourceRow], compose: Callable[[SourceRow], SourceRecord],
        resend_known: bool, reread: Reread | None = None,
    ) -> tuple[Job, list[bool]]:
        """The rows of a chunk that may have changed, to compose; the others count as
        unchanged.

        One state query for the chunk's source fingerprints: in a no-change cycle that is all
        the state work, and nothing is composed or encoded. A row's raw values are
        fingerprinted here only to compare them with a mark; the others' fingerprints are
        computed where they are composed (`prepare.prepare_rows`).
        """
        seed = None if self.assume_forced or resend_known else self.source_seed
        marks = {} if seed is None else self.state.source_marks(
            self.resource, [row.key for row in chunk])
        # Rows and child rows are plain tuples (source.stream), as SourceHasher expects.
        hasher = None if seed is None or not marks else SourceHasher(seed)
        # A row the database digested is marked from its digest, always here: it costs a
        # short hash, and the compose worker then never hashes its values.
        digester = None if seed is None else DigestHasher(seed)
        counts = self.report.counts
        todo: list[SourceRow] = []
        fingerprints: list[str | None] = []
        duplicates: list[bool] = []
        changed: list[str] = []  # keys of digest-only rows to read again with values
        for row in chunk:
            if self._sent_meanwhile(row.key):
                continue  # read again by a later pass while its first send is in flight
            duplicate = row.key == self._last_key
            self._last_key = row.key
            mark = marks.get(row.key)
            fp: str | None = UNKNOWN
            if row.digest is not None and digester is not None:
                fp = digester(row.digest)
            elif mark is not None and hasher is not None:
                fp = hasher(row.raw, row.kids)
            if (mark is not None and fp == mark.source_fingerprint and row.repeats == 1
                    and not duplicate and (mark.has_payload or not self.keep_payloads)):
                counts.scanned += 1
                counts.unchanged += 1
                self.seen_live += 1
                continue
            if reread is not None:
                changed.append(row.key)
                continue
            todo.append(row)
            fingerprints.append(fp)
            duplicates.append(duplicate)
        if changed and reread is not None:
            self._reread(reread(changed), digester, todo, fingerprints, duplicates)
        job = Job(self.resource, compose, seed, todo, fingerprints, with_payload=self.dry_run)
        return job, duplicates

    def _reread(self, rows: Iterable[SourceRow], digester: DigestHasher | None,
                todo: list[SourceRow], fingerprints: list[str | None],
                duplicates: list[bool]) -> None:
        """Rows a digest-only read found changed (or unmarked), read again with values: to
        compose, in key order, each marked from its own (current) digest."""
        last = None
        for row in rows:
            if self._sent_meanwhile(row.key):
                continue
            todo.append(row)
            fingerprints.append(UNKNOWN if row.digest is None or digester is None
                                else digester(row.digest))
            duplicates.append(row.key == last)
            last = row.key

    def _plan_chunk(self, chunk: list[Prepared], duplicates: list[bool],
                    resend_known: bool) -> Iterator[Item]:
        if self._halted() or not chunk:
            return
        # Read again by a later pass while its first send is in flight: checked again here,
        # as the previous chunk's records were handed out after this chunk was read.
        fresh = [(p, d) for p, d in zip(chunk, duplicates, strict=True)
                 if not self._sent_meanwhile(p.key)]
        counts = self.report.counts
        rows = self.state.lookup(self.resource, [p.key for p, _ in fresh])
        rejects: list[Outcome] = []
        backfill: list[Outcome] = []
        candidates: list[_Candidate] = []
        for prepared, duplicate in fresh:
            counts.scanned += 1
            row = rows.get(prepared.key)
            if row is not None and row.status is not Status.GONE and not duplicate:
                self.seen_live += 1
            outcome = self._outcome(prepared, row)
            change = self._classify(outcome, row, resend_known)
            counts.bump(_COUNT_OF_CHANGE[change])
            if change is Change.UNCHANGED and not duplicate:
                # Unchanged as a record: remember its source fingerprint (and, where kept,
                # its payload), so the next cycle need not compose it.
                if (prepared.source_fingerprint is not None
                        or (self.keep_payloads and _lacks_payload(row))):
                    backfill.append(outcome)
                continue
            reasons = _duplicate(prepared.key) if duplicate else prepared.reasons
            if reasons:
                rejects.append(outcome.with_reason("; ".join(reasons)))
            else:
                candidates.append((prepared, outcome, row))
            self._sample(_COUNT_OF_CHANGE[change], prepared.key, prepared.payload)
        sendable, waiting = self._split_waiting(candidates)
        counts.rejected += len(rejects)
        counts.waiting += len(waiting)
        if not self.dry_run:
            self.writes.mark_rejected(self.resource, rejects)
            self.writes.mark_pending(self.resource, waiting)
            self.writes.record_unchanged(self.resource, backfill)
        for prepared, outcome, row in sendable:
            removed = _removed_tags(row, outcome.tags)
            if removed:
                counts.untagged += 1
                self._sample("untag", prepared.key, {"email": outcome.metrilo_id,
                                                     "tags": list(removed)})
            if not self.dry_run:
                self._inflight[prepared.key] = InFlight(outcome, removed)
            # The canonical JSON is the request body too: each record is encoded once.
            yield Item(prepared.key, body=prepared.body)

    def _classify(self, outcome: Outcome, row: StateRow | None, resend_known: bool) -> Change:
        if self.ignore_forced and row is not None and row.forced:
            row = replace(row, forced=False)
        change = classify(outcome.fingerprint, row)
        forcing = self.assume_forced or resend_known
        if forcing and row is not None and row.status is not Status.GONE:
            return Change.FORCED
        return change

    def _outcome(self, prepared: Prepared, row: StateRow | None) -> Outcome:
        """The record's outcome-to-be (state keeps its canonical JSON, or what it says)."""
        return Outcome(
            key=prepared.key,
            metrilo_id=prepared.metrilo_id,
            fingerprint=prepared.fingerprint,
            tags=prepared.tags,
            payload=(prepared.kept or prepared.body.decode()) if self.keep_payloads else None,
            source_fingerprint=prepared.source_fingerprint,
            synced_before=(row is not None and row.status is Status.SYNCED
                           and row.metrilo_id == prepared.metrilo_id),
        )

    def _split_waiting(
        self, candidates: list[_Candidate]
    ) -> tuple[list[_Candidate], list[Outcome]]:
        if self.dependencies is None or not candidates:
            return candidates, []
        blockers = Blockers(
            self.state, self.dependencies, [c[0] for c in candidates], self.synced,
            # A dry run sends nothing, so a customer new in this cycle is not in state yet;
            # a real cycle would send it before the orders. Only a refused one blocks then.
            only_refused=self.dry_run,
        )
        sendable, waiting = [], []
        for candidate in candidates:
            why = blockers.why_waiting(candidate[0])
            if why:
                waiting.append(candidate[1].with_reason(why))
            else:
                sendable.append(candidate)
        return sendable, waiting

    def _sample(self, change: str, key: str, payload: Payload | None) -> None:
        if not self.dry_run or payload is None:
            return
        if sum(1 for s in self.report.samples if s.change == change) < SAMPLES_PER_CHANGE:
            self.report.samples.append(Sample(change, key, payload))


def _duplicate(key: str) -> tuple[str, ...]:
    return (f"duplicate key {key!r} from the source: the key must be unique "
            "(fix `key:` or the query in mappings.yaml)",)


def _lacks_payload(row: StateRow | None) -> bool:
    return row is not None and row.status is Status.SYNCED and not row.has_payload


def _removed_tags(row: StateRow | None, tags: tuple[str, ...]) -> tuple[str, ...]:
    if row is None or not row.tags:
        return ()
    current = set(tags)
    return tuple(t for t in row.tags if t not in current)



def _chunks(rows: Iterable[SourceRow], size: int) -> Iterator[list[SourceRow]]:
    chunk: list[SourceRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
