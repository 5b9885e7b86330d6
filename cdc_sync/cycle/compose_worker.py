"""The compose worker process, both ends of its pipes (cycle/composing.py decides when to use it).

The worker is a plain `python -c` child (subprocess, pickles over its stdin and stdout):
- not multiprocessing's fork: the cycle's process has threads (HTTP senders, the daemon's
  lease and scheduler), and a child forked while one of them holds a lock can deadlock;
- not spawn or forkserver either: both import the parent's `__main__` again (the CLI, with
  SQLAlchemy and httpx: seconds of CPU and tens of MB), where this child imports the pure
  core only. The composer is made of closures and does not pickle: the worker rebuilds it
  from its `ComposerRecipe` (the resource's mapped fields and children, the time zone).

The child lives in a session of its own and ignores SIGINT/SIGTERM: a stop is the parent's
decision (Ctrl-C reaches only the parent). It exits when its stdin closes: when `close` is
called at the end of the cycle, or when the parent dies in any way. If it dies mid-cycle,
the parent raises `ComposeWorkerError`; the records not sent are read again next cycle.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import os
import pickle
import select
import signal
import subprocess
import sys
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import cdc_sync
from cdc_sync.core.prepare import PlainRow, Prepared, Shape, prepare_rows
from cdc_sync.core.records import RowComposer
from cdc_sync.core.resources import SourceRecord
from cdc_sync.errors import ComposeWorkerError

if TYPE_CHECKING:  # its type only: composing.py hands jobs to this module's worker
    from cdc_sync.cycle.composing import Job

log = logging.getLogger(__name__)

PIPE_BYTES = 1 << 20
"""The size asked for the worker's pipes (Linux; the default is 64 KiB): a chunk and its
answer fit, so neither side blocks on a write while the other is busy."""

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_new_tuple = tuple.__new__


class SentJob:
    """A job in the worker; its answer is read in order of sending, perhaps before asked
    for (to make room in the pipe for the next job)."""

    def __init__(self, worker: ComposeWorker, what: str) -> None:
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


class ComposeWorker:
    """The child process and its two pipes (parent side)."""

    def __init__(self) -> None:
        root = str(Path(cdc_sync.__file__).resolve().parent.parent)
        code = (f"import sys; sys.path.insert(0, {root!r}); "
                "from cdc_sync.cycle.compose_worker import serve; serve()")
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
        self._pending: deque[SentJob] = deque()  # sent, answer not read yet, in order
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

    def send(self, job: Job) -> SentJob | None:
        """Hand the job to the child; None when its rows do not pickle (compose them here)."""
        recipe = pickle.dumps(job.recipe, _PROTOCOL)
        known = self._recipes.get(recipe)
        ident = len(self._recipes) if known is None else known
        shape = job.rows[0].shape  # one stream's rows: one shape
        # Rows are plain tuples already (source.stream), as the source fingerprint needs; as
        # read: the values a full read left as bytes are converted by the child, off this
        # process (core/deferred.py).
        rows = [(row.key, row.read_raw, row.read_kids, row.repeats) for row in job.rows]
        try:
            # With its memo: a driver hands the same objects again (repeated texts), which a
            # memo writes once and the child reads once (without it, reading took 40% longer).
            message = pickle.dumps(
                (ident, recipe if known is None else None,
                 (shape.labels, shape.children, shape.deferred), job.seed, rows,
                 job.fingerprints, job.with_payload), _PROTOCOL)
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
        sent = SentJob(self, what)
        self._pending.append(sent)
        return sent

    def receive(self, sent: SentJob) -> list[Prepared]:
        """The job's records: the answers sent before it are read (and kept) first."""
        while sent.answer is None:
            self._fetch_one()
        answer, sent.answer = sent.answer, None
        return answer

    def drain(self, sent: SentJob) -> None:
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


def flat_pickle(message: Any) -> bytes:
    """`message` pickled without a memo (`Pickler.fast`): how the child writes its answers.

    The memo lets a pickle name an object seen before instead of writing it again. An answer
    is fresh values (bytes, hex texts, tuples) that are rarely the same object twice, so that
    bookkeeping was about 60% of pickling it and 20% of reading it back. Without it an object
    given twice is written twice and read back as two equal ones; one that holds itself (no
    record does) raises ValueError instead of being pickled.
    """
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, _PROTOCOL)
    pickler.fast = True
    pickler.dump(message)
    return buffer.getvalue()


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
        labels, children, deferred = shape
        converted = Shape(labels, children)  # its rows' values are converted below
        if deferred is None:
            plain = [PlainRow(key, raw, kids, converted, repeats)
                     for key, raw, kids, repeats in rows]
        else:  # values the read left as bytes, converted here, as the driver converts them
            plain = []
            finish = deferred.finisher()
            for key, raw, kids, repeats in rows:
                values, children_rows = finish(raw, kids)
                plain.append(PlainRow(key, values, children_rows, converted, repeats))
        # A PlainRow has what the composer reads of a SourceRow (key, raw, kids, shape,
        # repeats, values), without the source package (SQLAlchemy) in the worker.
        compose = cast("Callable[[PlainRow], SourceRecord]", composer)
        prepared = prepare_rows(compose, composer.recipe.resource, seed, plain, fingerprints,
                                with_payload=with_payload)
        return "done", [tuple(p) for p in prepared]
    except Exception:  # a bug: the parent raises it with this traceback
        return "error", traceback.format_exc()


def _answer(output: IO[bytes], message: tuple[str, Any]) -> None:
    output.write(flat_pickle(message))
    output.flush()
