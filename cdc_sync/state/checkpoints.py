"""WAL checkpoints of a SQLite state DB, in a thread of their own.

SQLite copies its write-ahead log back into the database file (a checkpoint, ending with an
fsync) in whichever connection commits past `wal_autocheckpoint` pages, 1,000 by default.
State rows are keyed across the whole table, so marking 1,000 changed orders synced writes
about 1,000 pages: about one commit per incremental cycle also ran the checkpoint, while the
cycle waited for it (27 ms on an idle disk, 40-80 ms with the machine busy; bench/README.md,
"Where the incremental cycle's time goes at 1M").

Here the writers' own automatic checkpoint is only a backstop (`BACKSTOP_PAGES`, for a
checkpointer that cannot keep up), and after each write transaction a thread with a
connection of its own runs a PASSIVE checkpoint, which waits for no reader and no writer: the
committing thread goes on reading the shop and sending while the log is copied. Nothing is
less durable than before: under `synchronous=NORMAL` a commit is durable once a checkpoint
synced it, and the log is now checkpointed after every burst of writes instead of every
1,000 pages (which, in a quiet daemon, could take hours).
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

# The writers' own automatic checkpoint, for when the thread falls behind (about 80 MB of log).
BACKSTOP_PAGES = 20_000
# A burst of commits (one per batch Metrilo answered) is checkpointed once, this long after
# the first of them.
SETTLE_SECONDS = 0.05
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
        """Wait for a commit; False once idle (the thread then ends)."""
        if not self._due.wait(IDLE_SECONDS):
            with self._lock:
                if not self._due.is_set():
                    self._thread = None
                    return False
        # Let the commit that woke us (and the batches answered with it) finish first.
        threading.Event().wait(SETTLE_SECONDS)
        self._due.clear()
        return True

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # the writers' backstop checkpoints instead
            log.debug("state DB checkpoint skipped: %s", exc)

    def _end(self, why: str) -> None:
        log.warning("state DB: %s; the writers checkpoint it instead", why)
        with self._lock:
            self._thread = None
