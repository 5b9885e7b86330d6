"""Connecting to the state DB, and turning database failures into StateErrors that say the fix."""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from cdc_sync.errors import StateError
from cdc_sync.settings import redact_url, usual_url
from cdc_sync.state.checkpoints import BACKSTOP_PAGES, WalCheckpoints

log = logging.getLogger(__name__)

SUPPORTED_DIALECTS = ("sqlite", "postgresql")
SQLITE_BUSY_TIMEOUT_MS = 10_000

_URL_FIX = (
    "set CDC_SYNC_STATE_URL (or --state-url) to sqlite:///path/to/state.sqlite or "
    "postgresql+psycopg://user@host/dbname"
)


def create_state_engine(url: str) -> sa.Engine:
    """An engine for the state DB: SQLite tuned for a daemon plus a CLI, or PostgreSQL."""
    try:
        parsed = sa.make_url(usual_url(url))
    except ArgumentError:
        raise StateError(
            f"state DB URL {redact_url(url)} is not a database URL; fix: {_URL_FIX}"
        ) from None
    if parsed.get_backend_name() not in SUPPORTED_DIALECTS:
        raise StateError(
            f"state DB {redact_url(url)}: {parsed.get_backend_name()} is not supported for "
            f"state; fix: {_URL_FIX}"
        )
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed)
        return sa.create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise StateError(f"state DB {redact_url(url)}: {exc}; fix: {_URL_FIX}") from None


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    # The daemon's scheduler threads and the store share the engine; sqlite3 must allow it.
    engine = sa.create_engine(url, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _tune_sqlite)
    path = url.database
    if path and path != ":memory:" and not url.query.get("uri"):
        checkpoints = WalCheckpoints(path, busy_timeout_ms=SQLITE_BUSY_TIMEOUT_MS)
        event.listen(engine, "commit", checkpoints.committed)
    return engine


def checkpoint(engine: sa.Engine) -> None:
    """A PASSIVE checkpoint of a SQLite state DB's log, now (a store closing); a busy or
    failing one is left to the next (the checkpoint thread, or the writers' backstop)."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except SQLAlchemyError as exc:
        log.debug("state DB checkpoint at close skipped: %s", exc)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # Wait for another process's lock instead of failing at once; first, because switching
        # to WAL needs a lock too.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        # NORMAL is durable under WAL up to the last checkpoint, and far faster than FULL for
        # per-chunk commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints run in a thread of their own after commits (checkpoints.py); a writer
        # checkpoints only if that thread falls far behind.
        cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch to WAL, so `cdc-sync status` reads while the daemon writes.

    SQLite answers "database is locked" to the switch without waiting on busy_timeout when
    another connection is mid-transaction (two processes opening a new file at once), so
    wait here instead, as long as busy_timeout would.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextmanager
def state_errors(url: sa.URL | str, action: str) -> Iterator[None]:
    """Re-raise a database failure while doing `action` as a StateError naming the DB and a fix."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StateError(describe_failure(url, action, exc)) from exc


def describe_failure(url: sa.URL | str, action: str, exc: SQLAlchemyError) -> str:
    """`state DB <url, password hidden>: could not <action>: <cause>; fix: <fix>`."""
    shown = redact_url(url.render_as_string(hide_password=False) if isinstance(url, sa.URL)
                       else url)
    cause = _cause(exc)
    return f"state DB {shown}: could not {action}: {cause}; fix: {_fix_for(cause)}"


def _cause(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc)
    first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"{type(orig or exc).__name__}: {first_line}"


_FIXES = (
    (("no such table", "does not exist", "undefinedtable"),
     "run `cdc-sync db upgrade` to create or update the state tables"),
    (("database is locked", "lock timeout", "deadlock"),
     "another process holds a lock on the state DB; stop the other cdc-sync process or retry"),
    (("unable to open database file", "readonly database", "read-only"),
     "make sure the state DB file's directory exists and is writable by this user"),
    (("connection", "could not connect", "timeout", "password authentication"),
     "check that the server is running and that CDC_SYNC_STATE_URL (host, port, user, "
     "password, database) is right"),
)


_NO_DATABASE = re.compile(r'database "[^"]*" does not exist', re.IGNORECASE)
_CREATE_DATABASE = (
    "the PostgreSQL database named in CDC_SYNC_STATE_URL does not exist yet: create it (as a "
    "user allowed to: `createdb -h HOST -U USER DBNAME` in a shell, or `CREATE DATABASE "
    "dbname;` in psql), then start cdc-sync again; it creates its tables itself"
)


def _fix_for(cause: str) -> str:
    # Before the table fixes: `db upgrade` creates tables, never the database itself.
    if _NO_DATABASE.search(cause):
        return _CREATE_DATABASE
    lowered = cause.lower()
    for needles, fix in _FIXES:
        if any(needle in lowered for needle in needles):
            return fix
    return "check that the state DB named by CDC_SYNC_STATE_URL is reachable and writable"
