"""One active instance per state DB: a lease only one process can hold at a time.

PostgreSQL state: a session-level advisory lock on a dedicated connection. The server frees it
the moment that connection ends (a killed process's socket closes; a dead host is noticed by
TCP keepalives; a frozen process by `idle_session_timeout`), so a standby replica that retries
every few seconds takes over within one interval.

SQLite state: an exclusive `flock` on a file next to the database. The kernel frees it when
the process ends, however it ends (SIGKILL included), so a stale lock cannot block a restart.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import getpass
import logging
import os
import socket
from pathlib import Path
from typing import IO, Protocol

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from cdc_sync.errors import StateError
from cdc_sync.settings import redact_url, usual_url
from cdc_sync.state.engine import describe_failure

log = logging.getLogger(__name__)

# Any constant works; every cdc-sync process must use the same one (migrations use another).
PG_LEASE_KEY = 0x0CDC5_DAE0
# A dead peer's connection is dropped after about idle + interval * count seconds.
_KEEPALIVE = {"idle": 10, "interval": 5, "count": 3}
_CONNECT_TIMEOUT_S = 10
_PING_TIMEOUT_MS = 5_000


class Lease(Protocol):
    """What the daemon and the CLI need of a lease, whatever the state DB."""

    allows_standby: bool
    """True when a second daemon may wait for the lease (PostgreSQL) instead of refusing."""

    def acquire(self) -> bool:
        """Take the lease if it is free; True when this process holds it now."""

    def alive(self) -> bool:
        """Whether this process still holds the lease (False once it is lost)."""

    def holder(self) -> str | None:
        """Who holds the lease now, as far as can be told ("cdc-sync pid 12 on web1")."""

    def release(self) -> None:
        """Give the lease up (safe to call when not held, and twice)."""


def identity() -> str:
    """How this process names itself to others: user, host and pid."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers with an arbitrary uid)
        user = str(os.getuid())
    return f"cdc-sync pid {os.getpid()} ({user}@{socket.gethostname()})"


def refusal(lease: Lease, state_url: str) -> str:
    """Why a second daemon may not start while `lease` is held by another process."""
    where = f" (lock file {lease.path})" if isinstance(lease, FileLease) else ""
    return (
        f"another cdc-sync process already holds the state DB {redact_url(state_url)}: "
        f"{lease.holder() or 'a daemon or a foreground sync'}{where}; fix: stop it "
        "first (two processes must never push at once); for a standby replica that takes "
        "over automatically, use a PostgreSQL state DB"
    )


def open_lease(state_url: str, *, session_timeout: float | None = None) -> Lease:
    """The lease that fits the state DB at `state_url`.

    `session_timeout` (PostgreSQL): a holder that stops calling `alive` for this many seconds
    loses the lease; the daemon pings every poll, a foreground CLI run does not ping (None).
    """
    url = sa.make_url(usual_url(state_url))
    if url.get_backend_name() == "postgresql":
        return AdvisoryLease(state_url, session_timeout=session_timeout)
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return ProcessLease()  # a private in-memory database: nobody else can share it
    return FileLease(Path(database).with_name(Path(database).name + ".lock"))


class ProcessLease:
    """For an in-memory state DB, which no other process can open: always held."""

    allows_standby = False

    def acquire(self) -> bool:
        return True

    def alive(self) -> bool:
        return True

    def holder(self) -> str | None:
        return None

    def release(self) -> None:
        return None


class FileLease:
    """An exclusive flock on `path`; the file also names the holder for error messages."""

    allows_standby = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        if self._file is not None:
            return True
        try:
            handle = self.path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise StateError(
                f"cannot create the lock file {self.path} ({exc.strerror}); fix: make its "
                "directory (the SQLite state DB's) writable by this user"
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                return False
            raise
        handle.truncate(0)
        handle.write(identity() + "\n")
        handle.flush()
        self._file = handle
        return True

    def alive(self) -> bool:
        return self._file is not None

    def holder(self) -> str | None:
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return text or None

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            # Emptied first so a reader never names a process that no longer holds it.
            handle.truncate(0)
            handle.close()


class AdvisoryLease:
    """pg_try_advisory_lock on one dedicated connection, kept open while the lease is held."""

    allows_standby = True

    def __init__(self, state_url: str, *, key: int = PG_LEASE_KEY,
                 session_timeout: float | None = None) -> None:
        self._url = state_url
        self._key = key
        self._session_timeout = session_timeout
        self._engine = _lease_engine(state_url)
        self._conn: sa.Connection | None = None
        self._held = False

    def acquire(self) -> bool:
        if self._held:
            return True
        try:
            conn = self._connection()
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key})
            self._held = bool(got.scalar())
        except sa.exc.SQLAlchemyError as exc:
            self._drop()
            raise StateError(describe_failure(self._url, "take the daemon lease", exc)) from None
        return self._held

    def alive(self) -> bool:
        if not self._held or self._conn is None:
            return False
        try:
            self._conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            log.error("lost the daemon lease on %s: %s", redact_url(self._url),
                      describe_failure(self._url, "keep the lease", exc))
            self._drop()
            return False
        return True

    def holder(self) -> str | None:
        stmt = sa.text(
            "SELECT a.application_name, a.client_addr, a.pid FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid = :high AND l.objid = :low "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        params = {"high": self._key >> 32, "low": self._key & 0xFFFFFFFF}
        try:
            with self._engine.connect() as conn:
                row = conn.execute(stmt, params).first()
        except sa.exc.SQLAlchemyError:
            return None
        if row is None:
            return None
        name, address, pid = row
        return f"{name or 'unknown'} (server pid {pid}, from {address or 'a local socket'})"

    def release(self) -> None:
        if self._held and self._conn is not None:
            # Closing the connection below frees it anyway; unlocking first is only tidier.
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        self._drop()
        self._engine.dispose()

    def _connection(self) -> sa.Connection:
        if self._conn is None:
            conn = self._engine.connect()
            # Autocommit: the lock belongs to the session, and no transaction stays open.
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            if self._session_timeout is not None:
                _bound_the_session(conn, self._session_timeout)
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._held = False
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except sa.exc.SQLAlchemyError:
                pass


def _lease_engine(state_url: str) -> sa.Engine:
    url = sa.make_url(usual_url(state_url))
    keepalive = " ".join(f"-c tcp_keepalives_{k}={v}" for k, v in _KEEPALIVE.items())
    return sa.create_engine(
        url,
        poolclass=NullPool,
        connect_args={
            "application_name": identity()[:63],
            "connect_timeout": _CONNECT_TIMEOUT_S,
            # Server side: notice a vanished client; client side: notice a vanished server.
            "options": f"{keepalive} -c statement_timeout={_PING_TIMEOUT_MS}",
            "keepalives": 1,
            "keepalives_idle": _KEEPALIVE["idle"],
            "keepalives_interval": _KEEPALIVE["interval"],
            "keepalives_count": _KEEPALIVE["count"],
        },
    )


def _bound_the_session(conn: sa.Connection, seconds: float) -> None:
    """Free the lease of a holder that stops pinging (frozen, partitioned); PostgreSQL 14+."""
    if conn.dialect.server_version_info and conn.dialect.server_version_info >= (14,):
        conn.execute(sa.text(f"SET idle_session_timeout = {int(seconds * 1000)}"))
