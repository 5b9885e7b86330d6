"""The hot-path statements of the store, built once per store and reused for every chunk.

Each write is an upsert run with executemany: a batch of outcomes costs one statement
execution (one round trip with psycopg's pipelined executemany), not one per record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from cdc_sync.state.tables import sync_state

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


@dataclass(frozen=True, slots=True)
class HotStatements:
    """Statements for lookup and the mark_* calls, for one dialect."""

    lookup: sa.Select[Any]
    synced: sa.Insert
    failed: sa.Insert
    gone: sa.Update
    gone_tagged: sa.Update
    keep_payload: sa.Update


def build(dialect_name: str) -> HotStatements:
    """The hot statements for `dialect_name` ('sqlite' or 'postgresql')."""
    return HotStatements(
        lookup=_lookup(dialect_name),
        synced=_upsert_synced(dialect_name),
        failed=_upsert_failed(dialect_name),
        gone=_gone(),
        gone_tagged=_gone().values(tags=sa.bindparam("b_tags")),
        keep_payload=_keep_payload(),
    )


def upsert(dialect_name: str, table: sa.Table) -> Any:
    """INSERT that can take `.on_conflict_do_update` (both dialects spell it the same way)."""
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _lookup(dialect_name: str) -> sa.Select[Any]:
    keys: sa.ColumnElement[bool]
    if dialect_name == "postgresql":
        # One array parameter: about 3x faster than IN with 1000 parameters to bind and plan.
        keys = _c.key == sa.any_(sa.bindparam("keys", type_=postgresql.ARRAY(sa.String())))
    else:
        keys = _c.key.in_(sa.bindparam("keys", expanding=True))
    return sa.select(*ROW_COLUMNS).where(_c.resource == sa.bindparam("resource"), keys)


def _upsert_synced(dialect_name: str) -> sa.Insert:
    stmt = upsert(dialect_name, sync_state)
    everything = {
        name: stmt.excluded[name]
        for name in sync_state.c.keys()  # noqa: SIM118 (a ColumnCollection, not a dict)
        if name not in ("resource", "key")
    }
    result: sa.Insert = stmt.on_conflict_do_update(
        index_elements=[_c.resource, _c.key], set_=everything
    )
    return result


def _upsert_failed(dialect_name: str) -> sa.Insert:
    # Rejected and pending rows keep what Metrilo last accepted (synced_fingerprint, tags,
    # synced_at) and count one more consecutive failure.
    stmt = upsert(dialect_name, sync_state)
    result: sa.Insert = stmt.on_conflict_do_update(
        index_elements=[_c.resource, _c.key],
        set_={
            "metrilo_id": stmt.excluded.metrilo_id,
            "status": stmt.excluded.status,
            "attempt_fingerprint": stmt.excluded.attempt_fingerprint,
            "forced": stmt.excluded.forced,
            "attempts": _c.attempts + 1,
            "last_error": stmt.excluded.last_error,
            "updated_at": stmt.excluded.updated_at,
        },
    )
    return result


def _gone() -> sa.Update:
    return (
        sa.update(sync_state)
        .where(_c.resource == sa.bindparam("b_resource"), _c.key == sa.bindparam("b_key"))
        .values(status="gone", forced=False, updated_at=sa.bindparam("b_now"))
    )


def _keep_payload() -> sa.Update:
    # Only a row Metrilo holds at exactly this fingerprint may take the payload: then the
    # payload is what Metrilo accepted, though it was not sent in this cycle.
    return (
        sa.update(sync_state)
        .where(
            _c.resource == sa.bindparam("b_resource"),
            _c.key == sa.bindparam("b_key"),
            _c.synced_fingerprint == sa.bindparam("b_fingerprint"),
        )
        .values(payload=sa.bindparam("b_payload"))
    )
