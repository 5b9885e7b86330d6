"""Composing a chunk's rows here or in a worker process, so a push uses a second core.

A first push spends about half of its CPU on work that depends on nothing but the row and
the mapping: composing, validating, encoding (canonical JSON), hashing (the record's and the
raw row's fingerprints). `prepare_rows` (core/prepare.py) does all of it, and the planner
hands each chunk's rows to `Composing.submit`, which runs it either at once in this thread or
in one worker process while this thread reads the next chunk, checks dependencies, sends and
writes state. The same function runs in both places, so the records are the same bytes.

The worker process itself, and why it is a plain `python -c` child, is in
cycle/compose_worker.py.

The child is started lazily, once a cycle has composed `START_AFTER_ROWS` rows in this
thread (a no-change or small incremental cycle never pays for it), and is used only once it
said it is ready (its start runs on the other core, meanwhile chunks are composed here). If
it dies mid-cycle, the cycle stops with `ComposeWorkerError`; the records not sent are read
again next cycle.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cdc_sync.core.prepare import ComposableRow, Prepared, prepare_rows
from cdc_sync.core.records import ComposerRecipe, RowComposer
from cdc_sync.core.resources import Resource, SourceRecord
from cdc_sync.cycle.compose_worker import ComposeWorker
from cdc_sync.errors import ComposeWorkerError

log = logging.getLogger(__name__)

START_AFTER_ROWS = 2000
"""Rows a cycle composes in its own thread before it starts the worker: below that, starting
a Python process (about 0.3 s of CPU, on the other core) is more than the work it would take."""

DEPTH = 2
"""Jobs in the worker at most: the one it composes and the next, waiting in its pipe, so
neither side waits for the other when one chunk takes it longer than the one before."""


@dataclass(frozen=True, slots=True)
class Job:
    """One chunk's rows to compose, with what composing them needs.

    `composer` is the resource's `RowComposer` (one with a recipe may run in the worker), or
    any function of a source row (tests hand the planner plain functions), which runs here.
    """

    resource: Resource
    composer: Callable[[Any], SourceRecord]
    seed: bytes | None  # the key of source fingerprints (None: none computed)
    rows: Sequence[ComposableRow]  # as read (`source.stream.SourceRow`)
    fingerprints: Sequence[str | None]  # each row's source fingerprint, or UNKNOWN
    with_payload: bool = False  # keep each payload (a dry run's samples)

    def run_here(self) -> list[Prepared]:
        return prepare_rows(self.composer, self.resource, self.seed, self.rows,
                            self.fingerprints, with_payload=self.with_payload)

    @property
    def recipe(self) -> ComposerRecipe | None:
        """How a worker builds the composer; None: it cannot, compose here."""
        return self.composer.recipe if isinstance(self.composer, RowComposer) else None


class Ticket(Protocol):
    """A submitted job: its records (in row order) once ready, or dropped unread."""

    def result(self) -> list[Prepared]: ...
    def discard(self) -> None: ...


class _Done:
    """A job composed in this thread."""

    def __init__(self, prepared: list[Prepared]) -> None:
        self._prepared = prepared

    def result(self) -> list[Prepared]:
        return self._prepared

    def discard(self) -> None:
        self._prepared = []


class Composing:
    """Where chunks are composed during one cycle: here, or in one worker process.

    `workers` is 0 (always here) or 1. The planner submits a chunk, then asks for the
    previous chunk's result: so the worker holds up to `DEPTH` chunks (one composed, the
    next waiting in its pipe) while the planner reads the next and plans the one before.
    """

    depth = DEPTH  # chunks the planner may submit before it asks for the first one's result

    def __init__(self, workers: int, *, start_after: int = START_AFTER_ROWS,
                 wait_for_start: bool = False) -> None:
        if workers not in (0, 1):
            raise ValueError(f"compose workers must be 0 or 1, not {workers}")
        self.workers = workers
        self.start_after = start_after
        # Wait for a starting worker instead of composing here meanwhile (tests: the worker
        # composes every chunk from the first one on).
        self.wait_for_start = wait_for_start
        self._worker: ComposeWorker | None = None
        self._composed_here = 0
        self._unavailable = False  # the worker could not start: compose here this cycle
        self.starts = 0  # worker processes started so far
        self.chunks_sent = 0  # chunks composed by a worker so far
        self.most_in_flight = 0  # the most chunks in a worker at once

    @property
    def composing_elsewhere(self) -> bool:
        """Whether a chunk is in the worker now."""
        return self._worker is not None and self._worker.busy

    @property
    def worker_pid(self) -> int | None:
        """The worker process running now, if any."""
        return None if self._worker is None else self._worker.pid

    def submit(self, job: Job) -> Ticket:
        if not job.rows:
            return _Done([])
        worker = None if job.recipe is None else self._ready_worker()
        if worker is not None:
            sent = worker.send(job)
            if sent is not None:
                self.chunks_sent += 1
                self.most_in_flight = max(self.most_in_flight, worker.in_flight)
                return sent
        self._composed_here += len(job.rows)
        return _Done(job.run_here())

    def close(self) -> None:
        """Stop the worker (if any); the next submit may start a new one. Idempotent."""
        worker, self._worker = self._worker, None
        self._composed_here = 0
        self._unavailable = False
        if worker is not None:
            worker.close()

    def _ready_worker(self) -> ComposeWorker | None:
        if self.workers == 0 or self._unavailable:
            return None
        if self._worker is None:
            if self._composed_here < self.start_after:
                return None
            if os.name != "posix":  # select() on pipes, sessions: POSIX only
                self._give_up("a worker process needs a POSIX system")
                return None
            try:
                self._worker = ComposeWorker()
                self.starts += 1
            except OSError as exc:
                self._give_up(f"could not start it: {exc}")
                return None
        worker = self._worker
        if worker.in_flight >= DEPTH:
            return None  # never more (the planner does not ask for that)
        try:
            ready = worker.ready(wait=self.wait_for_start)
        except ComposeWorkerError as exc:
            self._give_up(str(exc))
            return None
        return worker if ready else None

    def _give_up(self, why: str) -> None:
        log.warning("compose worker unavailable, composing in the cycle's thread: %s", why)
        self._unavailable = True
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()


__all__ = ["ComposerRecipe", "Composing", "Job", "Ticket"]
