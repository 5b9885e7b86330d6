"""WAL checkpoints of a SQLite state DB, in a thread of their own.

SQLite copies its write-ahead log back into the database file (a checkpoint, ending with an
fsync) in whichever connection commits past `wal_autocheckpoint` pages, 1,000 by default.
State rows are keyed across the whole table, so marking 1,000 changed orders synced writes
about 1,000 pages: about one commit per incremental cycle also ran the checkpoint, while the
cycle waited for it (27 ms on an idle disk, 40-80 ms with the machine busy; bench/README.md,
"Where the incremental cycle's time goes at 1M").

Here the writers' own automatic checkpoint is only a backstop (`BACKSTOP_PAGES`, for a
checkpointer that cannot keep up), and a thread with a connection of its own runs a PASSIVE
checkpoint (it waits for no reader and no writer) once the writes pause (`QUIET_SECONDS`; a
daemon's cycle then checkpoints in the pause after it, not while it reads and sends), or at
the latest `MAX_DELAY_SECONDS` after the first write it covers (a long push). A store that
closes checkpoints what is left (`StateStore.close`: a one-shot `cdc-sync sync` ends before
any pause). Nothing is less durable than before: under `synchronous=NORMAL` a commit is
durable once a checkpoint synced it, and the log is now checkpointed within seconds of the
writes instead of every 1,000 pages (which, in a quiet daemon, could take hours).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

log = logging.getLogger(__name__)

# The writers' own automatic checkpoint, for when the thread falls behind (about 80 MB of log).
BACKSTOP_PAGES = 20_000
# A checkpoint waits for the writes to pause this long (a cycle's commits come in bursts: its
# batches, marks and run history), or this long after the first write it would cover.
QUIET_SECONDS = 0.5
MAX_DELAY_SECONDS = 5.0
# A thread with nothing to checkpoint for this long ends; the next commit starts another.
IDLE_SECONDS = 5.0


class WalCheckpoints:
    """Checkpoints the WAL of the SQLite file at `path` after commits (`committed`)."""

    def __init__(self, path: str, *, busy_timeout_ms: int) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._lock = threading.Lock()
        self._due = threading.Event()
        self._thread: threading.Thread | None = None

    def committed(self, *_: object) -> None:
        """A write transaction is committing (SQLAlchemy's `commit` event): checkpoint soon."""
        with self._lock:
            self._due.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="state-checkpoints",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        try:
            connection = sqlite3.connect(self.path, check_same_thread=False)
        except sqlite3.Error as exc:
            self._end(f"could not open {self.path} for checkpoints: {exc}")
            return
        try:
            connection.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
            while self._next():
                self._checkpoint(connection)
        finally:
            connection.close()

    def _next(self) -> bool:
        """Wait for a commit, then for the writes to pause; False once idle (the thread then
        ends)."""
        if not self._due.wait(IDLE_SECONDS):
            with self._lock:
                if not self._due.is_set():
                    self._thread = None
                    return False
        first = time.monotonic()
        while True:
            self._due.clear()
            if not self._due.wait(QUIET_SECONDS):
                return True
            if time.monotonic() - first >= MAX_DELAY_SECONDS:
                return True  # still due: the writes after this checkpoint start the next

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # the writers' backstop checkpoints instead
            log.debug("state DB checkpoint skipped: %s", exc)

    def _end(self, why: str) -> None:
        log.warning("state DB: %s; the writers checkpoint it instead", why)
        with self._lock:
            self._thread = None
