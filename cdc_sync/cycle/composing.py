"""Composing a chunk's rows here or in a worker process, so a push uses a second core.

A first push spends about half of its CPU on work that depends on nothing but the row and
the mapping: composing, validating, encoding (canonical JSON), hashing (the record's and the
raw row's fingerprints). `prepare_rows` (core/prepare.py) does all of it, and the planner
hands each chunk's rows to `Composing.submit`, which runs it either at once in this thread or
in one worker process while this thread reads the next chunk, checks dependencies, sends and
writes state. The same function runs in both places, so the records are the same bytes.

The worker is a plain `python -c` child (subprocess, pickles over its stdin and stdout):
- not multiprocessing's fork: the cycle's process has threads (HTTP senders, the daemon's
  lease and scheduler), and a child forked while one of them holds a lock can deadlock;
- not spawn or forkserver either: both import the parent's `__main__` again (the CLI, with
  SQLAlchemy and httpx: seconds of CPU and tens of MB), where this child imports the pure
  core only. The composer is made of closures and does not pickle: the worker rebuilds it
  from its `ComposerRecipe` (the resource's mapped fields and children, the time zone).

The child is started lazily, once a cycle has composed `START_AFTER_ROWS` rows in this
thread (a no-change or small incremental cycle never pays for it), and is used only once it
said it is ready (its start runs on the other core, meanwhile chunks are composed here). It
lives in a session of its own and ignores SIGINT/SIGTERM: a stop is the parent's decision
(Ctrl-C reaches only the parent). It exits when its stdin closes: when `close` is called at
the end of the cycle, or when the parent dies in any way. If it dies mid-cycle, the cycle
stops with `ComposeWorkerError`; the records not sent are read again next cycle.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pickle
import select
import signal
import subprocess
import sys
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, cast

import cdc_sync
from cdc_sync.core.prepare import ComposableRow, PlainRow, Prepared, Shape, prepare_rows
from cdc_sync.core.records import ComposerRecipe, RowComposer
from cdc_sync.core.resources import Resource, SourceRecord
from cdc_sync.errors import ComposeWorkerError

log = logging.getLogger(__name__)

START_AFTER_ROWS = 2000
"""Rows a cycle composes in its own thread before it starts the worker: below that, starting
a Python process (about 0.3 s of CPU, on the other core) is more than the work it would take."""

DEPTH = 2
"""Jobs in the worker at most: the one it composes and the next, waiting in its pipe, so
neither side waits for the other when one chunk takes it longer than the one before."""

PIPE_BYTES = 1 << 20
"""The size asked for the worker's pipes (Linux; the default is 64 KiB): a chunk and its
answer fit, so neither side blocks on a write while the other is busy."""

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_new_tuple = tuple.__new__


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
        self._worker: _Worker | None = None
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

    def _ready_worker(self) -> _Worker | None:
        if self.workers == 0 or self._unavailable:
            return None
        if self._worker is None:
            if self._composed_here < self.start_after:
                return None
            if os.name != "posix":  # select() on pipes, sessions: POSIX only
                self._give_up("a worker process needs a POSIX system")
                return None
            try:
                self._worker = _Worker()
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


class _Sent:
    """A job in the worker; its answer is read in order of sending, perhaps before asked
    for (to make room in the pipe for the next job)."""

    def __init__(self, worker: _Worker, what: str) -> None:
        self._worker = worker
        self.what = what
        self._open = True
        self.answer: list[Prepared] | None = None  # read, not yet asked for

    def result(self) -> list[Prepared]:
        self._open = False
        return self._worker.receive(self)

    def discard(self) -> None:
        if self._open:
            self._open = False
            self._worker.drain(self)


class _Worker:
    """The child process and its two pipes (parent side)."""

    def __init__(self) -> None:
        root = str(Path(cdc_sync.__file__).resolve().parent.parent)
        code = (f"import sys; sys.path.insert(0, {root!r}); "
                "from cdc_sync.cycle.composing import serve; serve()")
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches the parent only, which decides
        )
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._input: IO[bytes] = self._process.stdin
        self._output: IO[bytes] = self._process.stdout
        self._ready = False
        self._recipes: dict[bytes, int] = {}
        self._pending: deque[_Sent] = deque()  # sent, answer not read yet, in order
        self._room = _widen(self._input, self._output) // 2
        log.debug("compose worker starting (pid %d)", self._process.pid)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def ready(self, *, wait: bool = False) -> bool:
        """Whether the child has said it is ready (waits for it only if asked to)."""
        if self._ready:
            return True
        waiting, _, _ = select.select([self._output], [], [], None if wait else 0)
        if not waiting:
            return False
        hello = self._load(None)
        if hello != ("ready", self.pid):
            raise ComposeWorkerError(f"the compose worker said {hello!r} instead of ready")
        self._ready = True
        return True

    def send(self, job: Job) -> _Sent | None:
        """Hand the job to the child; None when its rows do not pickle (compose them here)."""
        recipe = pickle.dumps(job.recipe, _PROTOCOL)
        known = self._recipes.get(recipe)
        ident = len(self._recipes) if known is None else known
        shape = job.rows[0].shape  # one stream's rows: one shape
        # Rows are plain tuples already (source.stream), as the source fingerprint needs.
        rows = [(row.key, row.raw, row.kids, row.repeats) for row in job.rows]
        try:
            message = pickle.dumps(
                (ident, recipe if known is None else None, (shape.labels, shape.children),
                 job.seed, rows, job.fingerprints, job.with_payload), _PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError):
            return None  # a value a driver gave that does not pickle (a memoryview...)
        # Deadlock-free: a write never waits on a child that waits on its own write. The job
        # goes behind the one in the child only when both fit in the pipe at once (the child
        # reads each job whole before composing it); else the earlier answers are read first.
        if len(message) > self._room:
            self._fetch_all()
        what = f"{job.resource} records"
        try:
            self._input.write(message)
            self._input.flush()
        except OSError as exc:
            raise self._died(what, exc) from None
        self._recipes[recipe] = ident
        sent = _Sent(self, what)
        self._pending.append(sent)
        return sent

    def receive(self, sent: _Sent) -> list[Prepared]:
        """The job's records: the answers sent before it are read (and kept) first."""
        while sent.answer is None:
            self._fetch_one()
        answer, sent.answer = sent.answer, None
        return answer

    def drain(self, sent: _Sent) -> None:
        """Read and drop a job's answer (the planner stopped early)."""
        # A dead worker: the next send or receive says so, if anything is still asked of it.
        with contextlib.suppress(ComposeWorkerError):
            self.receive(sent)

    def _fetch_all(self) -> None:
        while self._pending:
            self._fetch_one()

    def _fetch_one(self) -> None:
        if not self._pending:
            raise ComposeWorkerError("no answer is due from the compose worker")
        sent = self._pending[0]
        answer = self._load(sent.what)
        self._pending.popleft()
        match answer:
            case ("done", list() as rows):
                sent.answer = [_new_tuple(Prepared, row) for row in rows]
                return
            case ("error", str() as text):
                raise ComposeWorkerError(
                    f"composing {sent.what} failed in the compose worker:\n{text}")
        raise ComposeWorkerError(f"the compose worker answered {type(answer).__name__}")

    def close(self) -> None:
        # Closing both pipes ends the child: its next read sees EOF, a write fails.
        for pipe in (self._input, self._output):
            with contextlib.suppress(OSError):
                pipe.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # stuck in one chunk: nothing of it is wanted
            self._process.kill()
            self._process.wait()
        log.debug("compose worker %d ended (%s)", self.pid, self._process.returncode)

    def _load(self, what: str | None) -> Any:
        try:
            return pickle.load(self._output)  # noqa: S301 - our own child's answers
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            raise self._died(what, exc) from None

    def _died(self, what: str | None, exc: BaseException) -> ComposeWorkerError:
        """`what` it was composing (None: it had not started)."""
        try:
            code = self._process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = self._process.wait()
        self._pending.clear()
        ended = (f"the compose worker process (pid {self.pid}) ended (exit code {code}; "
                 f"{type(exc).__name__})")
        if what is None:
            return ComposeWorkerError(f"{ended} before it was ready")
        return ComposeWorkerError(
            f"{ended} while composing {what}; the cycle stopped and the records not sent are "
            "read again next cycle; fix: if this repeats, set CDC_SYNC_COMPOSE_WORKERS=0 to "
            "compose in the cycle's own process, and report it"
        )


def _widen(*pipes: IO[bytes]) -> int:
    """Ask for `PIPE_BYTES` per pipe; the bytes the smallest holds (64 KiB where not Linux)."""
    import fcntl  # here: POSIX only, as a worker is (Composing)

    sizes = []
    for pipe in pipes:
        try:
            fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            sizes.append(fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ))
        except (AttributeError, OSError):  # not Linux, or above /proc/sys/fs/pipe-max-size
            sizes.append(1 << 16)
    return min(sizes)


# --- the child ---


def serve() -> None:
    """The worker's loop: a job in on stdin, its records out on stdout, until stdin closes."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    output = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print goes to stderr, never into the answers
    requests = sys.stdin.buffer
    gc.freeze()  # the imported modules are not garbage: full collections skip them
    composers: dict[int, RowComposer] = {}
    try:
        _answer(output, ("ready", os.getpid()))
        while True:
            try:
                job = pickle.load(requests)  # noqa: S301 - from the parent that started us
            except EOFError:
                return
            _answer(output, _compose(job, composers))
    except BrokenPipeError:  # the parent is gone
        return


def _compose(job: Any, composers: dict[int, RowComposer]) -> tuple[str, Any]:
    try:
        ident, recipe, shape, seed, rows, fingerprints, with_payload = job
        if recipe is not None:
            composers[ident] = RowComposer.of(pickle.loads(recipe))  # noqa: S301
        composer = composers[ident]
        assert composer.recipe is not None
        labels = Shape(*shape)
        plain = [PlainRow(key, raw, kids, labels, repeats) for key, raw, kids, repeats in rows]
        # A PlainRow has what the composer reads of a SourceRow (key, raw, kids, shape,
        # repeats, values), without the source package (SQLAlchemy) in the worker.
        compose = cast("Callable[[PlainRow], SourceRecord]", composer)
        prepared = prepare_rows(compose, composer.recipe.resource, seed, plain, fingerprints,
                                with_payload=with_payload)
        return "done", [tuple(p) for p in prepared]
    except Exception:  # a bug: the parent raises it with this traceback
        return "error", traceback.format_exc()


def _answer(output: IO[bytes], message: tuple[str, Any]) -> None:
    output.write(pickle.dumps(message, _PROTOCOL))
    output.flush()


__all__ = ["ComposerRecipe", "Composing", "Job", "Ticket"]
