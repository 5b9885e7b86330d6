"""The state writes of one resource's delivery, in a thread of their own, in order.

The cycle's main thread bounds a first push (it reads, merges, plans and hands out the
composing); committing each answered batch to state cost it ~10 us a record, most of it inside
SQLite. Here those writes run in a writer thread, one batch after another as they were
answered, so SQLite's work (which releases the GIL: one statement a batch, see
state/statements._synced_batch) runs on the other core beside the main thread.

What stays as it was:
- FIFO: batches are written in the order Metrilo's answers were committed by the main thread.
- Visibility: `close` is the barrier. `Delivery.deliver` closes its writer before it returns
  or raises, so whatever reads state after a resource's delivery (its deletes after a full
  read, reconciliation, marks, the next resource's dependency checks, run history) sees every
  write. Within a delivery a later pass (the pending walk, a reconciliation slice, rechecks)
  may read again a record answered whose write is still queued: the planner skips it until
  its write is done, as while in flight (`Planner.written`), else state's old mark would
  send it twice. Counts of records sent are added once written, here.
- Failures: the writer's first error is raised in the main thread, unchanged (the same
  StateError text and fix), at the next batch handed over or at `close`; batches after it are
  not written; when the block is already leaving on an error of its own (Metrilo's 401, an
  interrupt), that error goes on and the writer's is logged. Nothing is written that Metrilo
  did not answer 200 for; a crash before a batch
  is committed leaves its records as they were in state, so they are sent again next cycle
  (at-least-once, as a crash between an answer and its commit always did).
- Memory: the queue holds at most `DEPTH` batches; a slow state DB slows the push (the main
  thread waits to hand a batch over) instead of growing memory.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger(__name__)

DEPTH = 4
"""Writes handed over and not yet done, at most: answered batches (each <= the client's batch
size) and the planner's per-chunk writes (each <= a chunk, cycle/planwrites.py)."""

Write = Callable[[], None]
_Done = threading.Event
"""Set by the writer thread when it reaches it in the queue (`flush`), even after an error."""


class StateWriter:
    """A FIFO of state writes run by one thread; `close` waits for them (the barrier)."""

    def __init__(self, name: str, *, threaded: bool = True) -> None:
        # Not threaded (a state DB only the cycle's thread reaches: SQLite in memory), every
        # write runs at once in the caller's thread, its error raised there, as before.
        self._threaded = threaded
        self._name = name
        self._queue: queue.Queue[Write | _Done | None] = queue.Queue(maxsize=DEPTH)
        self._error: BaseException | None = None
        self._raised = False
        self._started = False
        self._thread = threading.Thread(target=self._run, name=f"state-writer-{name}",
                                        daemon=True)

    def __enter__(self) -> StateWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.close()
            return
        # Leaving on an error of its own (Metrilo's 401, an interrupt): that error goes on, as
        # it says what stopped the cycle and what to fix; the writer's, if it failed too, is
        # logged with its fix rather than raised over it. Nothing it did not write is lost:
        # those records are still unsynced in state and are sent again next cycle.
        try:
            self.close()
        except Exception as writer_error:
            log.error("the state writes of %s also failed: %s", self._name, writer_error)

    @property
    def running(self) -> bool:
        """Whether its thread was started (by a first write) and may be writing."""
        return self._started

    def write(self, write: Write) -> None:
        """Run `write` after those handed over before it; waits while DEPTH are queued.
        Raises the writer's error, if one of the earlier writes failed."""
        self._raise_error()
        if not self._threaded:
            write()
            return
        if not self._started:
            self._started = True
            # Started by the first write: a delivery that sends nothing (a no-change or a
            # small incremental cycle's resources) starts no thread.
            self._thread.start()
        self._queue.put(write)

    def flush(self) -> None:
        """Return once every write handed over so far is committed (or raise the first error
        among them, if not raised already); the thread goes on taking writes. For a read,
        within the delivery, of what the delivery wrote."""
        if self._started and self._thread.is_alive():
            done = _Done()
            self._queue.put(done)
            done.wait()
        self._raise_error()

    def close(self) -> None:
        """The barrier: return once every write handed over is committed (or raise the first
        error among them, if not raised already); the thread ends."""
        if self._started and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None and not self._raised:
            self._raised = True
            raise self._error

    def _run(self) -> None:
        while (write := self._queue.get()) is not None:
            if isinstance(write, _Done):
                write.set()
                continue
            if self._error is not None:
                continue  # drained, not written: the main thread stops at the error
            try:
                write()
            except BaseException as exc:  # raised again in the main thread, never lost
                self._error = exc
