"""Where the planner's state writes go: the delivery's writer once it runs, else state.

Per chunk the planner writes the records it rejected itself, the orders that wait for their
customer or products (pending) and the unchanged records' source marks. During a delivery the
answered batches are written by the delivery's writer thread (cycle/statewriter.py), on its
own connection. Were the planner's writes made on the cycle's thread meanwhile, the state DB
would see two writers at once: on SQLite the one that collides gets SQLITE_BUSY and sleeps in
the busy handler (1, 2, 5, 10 ... ms), on the thread that bounds the cycle. Once that
thread runs they are handed to it instead and join its FIFO: one writer, in the order handed
over, committed by the delivery's barrier, its first error raised in the cycle's thread with
nothing after it written. Before it runs (the chunks planned before the first answer, or a
delivery that sends nothing) and outside a delivery (a planner used alone; dry runs write
nothing) there is no other writer: they are written directly, as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from cdc_sync.cycle.statewriter import StateWriter, Write
from cdc_sync.state import Outcome


class WrittenState(Protocol):
    """What the planner writes to state (`StateStore` is one)."""

    def record_unchanged(self, resource: str, outcomes: Sequence[Outcome]) -> None: ...
    def mark_rejected(self, resource: str, outcomes: Sequence[Outcome]) -> None: ...
    def mark_pending(self, resource: str, outcomes: Sequence[Outcome]) -> None: ...


class PlanWrites:
    """The planner's three writes, through `through`'s writer while it is open."""

    def __init__(self, state: WrittenState) -> None:
        self._state = state
        self._writer: StateWriter | None = None
        # Pending marks handed to the writer and not known to be in state yet (`settle`).
        self._pending_handed = False

    @contextmanager
    def through(self, writer: StateWriter) -> Iterator[None]:
        """Hand every write to `writer` until the block ends (its owner closes it after)."""
        self._writer = writer
        try:
            yield
        finally:
            self._writer = None

    def record_unchanged(self, resource: str, outcomes: Sequence[Outcome]) -> None:
        self._write(outcomes, lambda: self._state.record_unchanged(resource, outcomes))

    def mark_rejected(self, resource: str, outcomes: Sequence[Outcome]) -> None:
        self._write(outcomes, lambda: self._state.mark_rejected(resource, outcomes))

    def mark_pending(self, resource: str, outcomes: Sequence[Outcome]) -> None:
        self._write(outcomes, lambda: self._state.mark_pending(resource, outcomes))
        self._pending_handed = self._pending_handed or bool(
            outcomes and self._writer is not None and self._writer.running)

    def settle(self) -> None:
        """The records marked pending so far are in state, as when they were written in the
        cycle's thread: the incremental pending walk reads "pending, not written this cycle",
        and must leave out the orders that waited in this cycle's passes. Waits for the
        writer only when such a mark was handed to it since (else it costs nothing: a flush
        would also wait for the answered batches queued, ~5 ms a 500-record batch, on the
        thread that bounds the cycle)."""
        if self._writer is not None and self._pending_handed:
            self._pending_handed = False
            self._writer.flush()

    def _write(self, outcomes: Sequence[Outcome], write: Write) -> None:
        if not outcomes:
            return
        if self._writer is None or not self._writer.running:
            # No other writer yet (its thread starts with the first answered batch): written
            # here, at once, so a delivery that sends nothing starts no thread for these.
            write()
        else:
            self._writer.write(write)
