"""The hot-path statements of the store, built once per store and reused for every chunk.

The per-chunk reads and writes (lookup, source_marks, mark_*, record_unchanged) are plain SQL
run through `Connection.exec_driver_sql` with plain tuples: SQLAlchemy's compiled statements
bind every value through a type processor and wrap every row, which cost more than the
database's own work (a lookup of 100k keys: 1.8 s against 0.3 s for the query itself). Writes
still go through the engine (events, error wrapping), one executemany per batch: one statement
execution (psycopg pipelines it), not one per record. The rare statements stay SQLAlchemy Core.

Every SQL text here is written with `?` placeholders and gets `%s` for psycopg.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from cdc_sync.state.rows import Status
from cdc_sync.state.tables import UtcDateTime, sync_state

_c = sync_state.c

ROW_COLUMNS = (
    _c.key,
    _c.metrilo_id,
    _c.status,
    _c.synced_fingerprint,
    _c.attempt_fingerprint,
    _c.tags,
    _c.forced,
    _c.attempts,
    _c.last_error,
    _c.synced_at,
    _c.payload.is_not(None).label("has_payload"),
)
"""The columns a StateRow is built from, in its field order (never the payload itself)."""

LOOKUP_COLUMNS = (
    "s.key, s.metrilo_id, s.status, s.synced_fingerprint, s.attempt_fingerprint, s.tags, "
    "s.forced, s.attempts, s.last_error, s.payload IS NOT NULL"
)
"""ROW_COLUMNS without synced_at (see StateRow), as plain SQL."""

_SYNCED_COLUMNS = (
    "metrilo_id", "status", "synced_fingerprint", "attempt_fingerprint", "tags", "forced",
    "attempts", "last_error", "synced_at", "updated_at", "payload", "source_fingerprint",
)

# A recheck still ahead survives a clean send: the unanswered attempt it waits out may still
# land after this newer version. A new recheck (this send was unanswered too) is later anyway.
_KEEP_PENDING_RECHECK = (
    "recheck_after = CASE WHEN excluded.recheck_after IS NULL "
    "AND sync_state.recheck_after > excluded.updated_at THEN sync_state.recheck_after "
    "ELSE excluded.recheck_after END"
)


@dataclass(frozen=True, slots=True)
class HotStatements:
    """Statements for the per-chunk calls, for one dialect.

    The SQL texts take the chunk's keys first, as `keys_param(keys)`: one parameter, so the
    statement is the same for every chunk (no recompiling, no cache growth) and PostgreSQL
    plans `= ANY(array)` about 3x faster than 1000 bound parameters.
    """

    keys_param: Callable[[Sequence[str]], Any]
    db_time: Callable[[datetime], Any]  # a timestamp as UtcDateTime would bind it
    lookup: str  # (keys, resource) -> LOOKUP_COLUMNS
    source_marks: str  # (keys, resource) -> key, source_fingerprint, has_payload
    # SQLite only: the same marks as three comma-joined texts in one row (see StateStore).
    packed_source_marks: str | None
    synced: str
    # SQLite only: _UPSERT_SYNCED for a whole batch in ONE statement (see _synced_batch).
    synced_batch: str | None
    synced_again: str  # a row synced before under the same Metrilo id (see _SYNCED_AGAIN)
    failed: str
    unchanged: str
    # (metrilo ids, resources) -> metrilo_id, status: the orders' customers and products.
    dependency_status: str
    gone: sa.Update
    gone_tagged: sa.Update


def build(dialect: Dialect) -> HotStatements:
    """The hot statements for `dialect` (SQLite or PostgreSQL)."""
    sqlite_db = dialect.name == "sqlite"
    sql = _for_sqlite if sqlite_db else _for_psycopg
    return HotStatements(
        keys_param=_json_list if sqlite_db else list,
        db_time=_time_binder(dialect),
        lookup=sql(_lookup(sqlite_db)),
        source_marks=sql(_source_marks(sqlite_db)),
        packed_source_marks=sql(_packed_source_marks()) if sqlite_db else None,
        synced=sql(_UPSERT_SYNCED),
        synced_batch=_synced_batch() if sqlite_db else None,
        synced_again=sql(_SYNCED_AGAIN),
        failed=sql(_UPSERT_FAILED),
        unchanged=sql(_UNCHANGED),
        dependency_status=sql(_dependency_status(sqlite_db)),
        gone=_gone(),
        gone_tagged=_gone().values(tags=sa.bindparam("b_tags")),
    )


def upsert(dialect_name: str, table: sa.Table) -> Any:
    """INSERT that can take `.on_conflict_do_update` (both dialects spell it the same way)."""
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _for_sqlite(text: str) -> str:
    return text


def _for_psycopg(text: str) -> str:
    return text.replace("?", "%s")


def _json_list(keys: Sequence[str]) -> str:
    return json.dumps(list(keys))


def _time_binder(dialect: Dialect) -> Callable[[datetime], Any]:
    # UtcDateTime's whole bind processing for this dialect, taken once so a batch converts its
    # timestamp once: on SQLite that ends in SQLAlchemy's DATETIME text, the same text Core
    # statements store. (The type's dialect-free processor stops at a naive datetime, which
    # sqlite3's Python-level default adapter then turned into text for every timestamp of
    # every row: 3 us of a synced row's 12, in another format than Core's.)
    process = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert process is not None, "UtcDateTime always processes what it binds"
    return process


def _chunk_rows(sqlite_db: bool) -> str:
    """The FROM/WHERE that finds a chunk's rows: one primary-key probe per key."""
    if sqlite_db:
        # json_each drives the loop (CROSS JOIN fixes the order): with `key IN (SELECT ...)`
        # SQLite builds a temporary index of the keys first, twice as slow.
        return (
            "FROM json_each(?) AS j CROSS JOIN sync_state AS s "
            "WHERE s.resource = ? AND s.key = j.value"
        )
    return "FROM sync_state AS s WHERE s.key = ANY(?) AND s.resource = ?"


def _dependency_status(sqlite_db: bool) -> str:
    # The ids drive the loop, each probing the (resource, metrilo_id) index, as in _chunk_rows.
    if sqlite_db:
        return (
            "SELECT s.metrilo_id, s.status FROM json_each(?) AS j CROSS JOIN sync_state AS s "
            "WHERE s.resource IN (SELECT value FROM json_each(?)) AND s.metrilo_id = j.value"
        )
    return (
        "SELECT s.metrilo_id, s.status FROM sync_state AS s "
        "WHERE s.metrilo_id = ANY(?) AND s.resource = ANY(?)"
    )


def _lookup(sqlite_db: bool) -> str:
    return f"SELECT {LOOKUP_COLUMNS} {_chunk_rows(sqlite_db)}"


def _skippable(sqlite_db: bool) -> str:
    """Rows a no-change cycle may skip by source fingerprint: accepted as they are, not forced.

    On SQLite the unary + keeps the status out of index choice: offered `status = ?`, SQLite
    picks the (resource, status) index and walks every synced row of the resource per chunk.
    """
    status = "+s.status" if sqlite_db else "s.status"
    return (
        f" AND {status} = 'synced' AND NOT s.forced AND s.source_fingerprint IS NOT NULL"
        " AND s.recheck_after IS NULL"
    )


def _source_marks(sqlite_db: bool) -> str:
    return (
        "SELECT s.key, s.source_fingerprint, s.payload IS NOT NULL "
        f"{_chunk_rows(sqlite_db)}{_skippable(sqlite_db)}"
    )


def _packed_source_marks() -> str:
    # The keys come back as their position in the JSON list (j.key), never as text, so only
    # the fingerprints could hold a comma; the store checks the counts.
    return (
        "SELECT group_concat(j.key), group_concat(s.source_fingerprint), "
        f"group_concat(s.payload IS NOT NULL, '') {_chunk_rows(True)}{_skippable(True)}"
    )


_UPSERT_SYNCED = (
    "INSERT INTO sync_state (resource, key, metrilo_id, status, synced_fingerprint, "
    "attempt_fingerprint, tags, forced, attempts, last_error, synced_at, updated_at, payload, "
    "source_fingerprint, recheck_after, key_number) "
    "VALUES (?, ?, ?, 'synced', ?, ?, ?, FALSE, 0, NULL, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (resource, key) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _SYNCED_COLUMNS)
    + ", " + _KEEP_PENDING_RECHECK
)
"""Params: resource, key, metrilo_id, fingerprint (twice), tags JSON, now (twice), payload,
source fingerprint, recheck time (or None), key number (columns.key_number). A key never
changes, so an update leaves its number as it is."""


def _synced_batch() -> str:
    """_UPSERT_SYNCED for every row of a batch at once, the rows given as one JSON array of
    arrays (SQLite).

    One statement instead of an executemany: sqlite3 binds each row of an executemany holding
    the GIL and releases it only around that row's step, so in a thread beside a busy one
    each row waited for the GIL again (cycle/statewriter.py); one statement runs the whole
    batch in C without it, and costs less by itself (100k rows, 500 a batch: 5.8 against 6.8
    us a row, bench/README.md, ninth session). json_extract, not ->>, which needs SQLite 3.38.
    The WHERE keeps SQLite from reading ON CONFLICT as a join's ON.
    """
    row = [f"json_extract(j.value, '$[{i}]')" for i in range(8)]
    key, metrilo_id, fingerprint, tags, payload, source_fp, recheck, number = row
    return (
        "INSERT INTO sync_state (resource, key, metrilo_id, status, synced_fingerprint, "
        "attempt_fingerprint, tags, forced, attempts, last_error, synced_at, updated_at, "
        "payload, source_fingerprint, recheck_after, key_number) "
        f"SELECT ?, {key}, {metrilo_id}, 'synced', {fingerprint}, {fingerprint}, {tags}, "
        f"FALSE, 0, NULL, ?, ?, {payload}, {source_fp}, {recheck}, {number} "
        "FROM json_each(?) AS j WHERE true "
        "ON CONFLICT (resource, key) DO UPDATE SET "
        + ", ".join(f"{name} = excluded.{name}" for name in _SYNCED_COLUMNS)
        + ", " + _KEEP_PENDING_RECHECK
    )
"""Params: resource, now (twice), the rows as JSON: [key, metrilo_id, fingerprint, tags JSON,
payload, source fingerprint, recheck time (or null), key number], _UPSERT_SYNCED's values."""

# A record sent again (state held it synced under the same Metrilo id, without a recheck to
# schedule): what _UPSERT_SYNCED writes, but neither the status nor the Metrilo id is set, so
# SQLite leaves the indexes on them alone, where the upsert rewrote an entry of each: 1,000
# resent orders at 1M rows wrote 2,860 pages of log, now about 1,000 (bench/README.md,
# seventh session). Only a row still synced under that id is written (the caller checks the
# count). A recheck still ahead survives, as _KEEP_PENDING_RECHECK keeps it.
_SYNCED_AGAIN = (
    "UPDATE sync_state SET synced_fingerprint = ?, attempt_fingerprint = ?, tags = ?, "
    "forced = FALSE, attempts = 0, last_error = NULL, synced_at = ?, updated_at = ?, "
    "payload = ?, source_fingerprint = ?, "
    "recheck_after = CASE WHEN recheck_after > ? THEN recheck_after END "
    "WHERE resource = ? AND key = ? AND status = 'synced' AND metrilo_id = ?"
)
"""Params: fingerprint (twice), tags JSON, now (three times), payload, source fingerprint,
resource, key, metrilo_id."""

# Rejected and pending rows keep what Metrilo last accepted (synced_fingerprint, tags,
# synced_at) and count one more consecutive failure. The source fingerprint goes: the row must
# be composed again next cycle, whatever its source says.
_UPSERT_FAILED = (
    "INSERT INTO sync_state (resource, key, metrilo_id, status, attempt_fingerprint, tags, "
    "forced, attempts, last_error, updated_at, key_number) "
    "VALUES (?, ?, ?, ?, ?, '[]', FALSE, 1, ?, ?, ?) "
    "ON CONFLICT (resource, key) DO UPDATE SET metrilo_id = excluded.metrilo_id, "
    "status = excluded.status, attempt_fingerprint = excluded.attempt_fingerprint, "
    "forced = FALSE, attempts = sync_state.attempts + 1, last_error = excluded.last_error, "
    "updated_at = excluded.updated_at, source_fingerprint = NULL"
)
"""Params: resource, key, metrilo_id, status, fingerprint, reason, now, key number."""

# Only a row Metrilo holds at exactly this fingerprint takes the source fingerprint (and the
# payload, when one is kept): then both describe what Metrilo accepted, though nothing was sent.
_UNCHANGED = (
    "UPDATE sync_state SET source_fingerprint = ?, payload = COALESCE(?, payload) "
    "WHERE resource = ? AND key = ? AND status = 'synced' AND synced_fingerprint = ?"
)
"""Params: source fingerprint, payload (None keeps the stored one), resource, key, fingerprint."""


def _gone() -> sa.Update:
    return (
        sa.update(sync_state)
        .where(_c.resource == sa.bindparam("b_resource"), _c.key == sa.bindparam("b_key"))
        .values(
            status=Status.GONE.value, forced=False, updated_at=sa.bindparam("b_now"),
            source_fingerprint=None,
        )
    )


