"""The state DB's tables (SQLAlchemy Core); migrations/versions must create exactly these.

tests/test_migrations.py compares this metadata with a migrated database, so a change here
needs a new migration (`alembic revision --autogenerate -m "..."`) in the same commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that goes in as UTC and always comes out timezone-aware UTC.

    SQLite keeps no zone and PostgreSQL answers in the session's zone; this evens both out.
    A naive datetime is taken to be UTC already.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # SQLite's DATETIME text has no zone field; strip it once it is UTC.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(
        self, value: Any, dialect: Dialect  # noqa: ARG002 (the signature is SQLAlchemy's)
    ) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


sync_state = sa.Table(
    "sync_state",
    metadata,
    sa.Column("resource", sa.String(), primary_key=True),
    sa.Column("key", sa.String(), primary_key=True),
    # The record's identity at Metrilo (email for customers, id otherwise): orders check
    # their customer and products by it.
    sa.Column("metrilo_id", sa.String(), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    # Last fingerprint Metrilo answered 200 for; NULL until the first success.
    sa.Column("synced_fingerprint", sa.String(64), nullable=True),
    sa.Column("attempt_fingerprint", sa.String(64), nullable=True),
    # JSON list of the customer tags Metrilo last accepted, to compute untags.
    sa.Column("tags", sa.Text(), nullable=False),
    sa.Column("forced", sa.Boolean(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("synced_at", UtcDateTime(), nullable=True),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    # Canonical JSON of the record Metrilo last accepted, kept only where an on_delete action
    # must send it again (orders with `on_delete: status`: Metrilo replaces every field, so a
    # status alone cannot be sent). NULL everywhere else, to keep the state DB small.
    sa.Column("payload", sa.Text(), nullable=True),
    # Hash of the raw source row (and the mapping) Metrilo last accepted, for synced rows only:
    # a row whose source hash matches is unchanged without being composed (migration 0004).
    # Every write that makes a row need composing again clears it.
    sa.Column("source_fingerprint", sa.String(32), nullable=True),
    # Set when Metrilo accepted this record in a batch where an earlier attempt's outcome is
    # unknown (it timed out): Metrilo may still apply that attempt, over this newer version, so
    # the record is sent once more after this time (migration 0005). NULL otherwise.
    sa.Column("recheck_after", UtcDateTime(), nullable=True),
    # The key as a number when it is the text of a signed 64-bit integer (columns.key_number),
    # else NULL (migration 0007). State sorts `key` as text ('10' before '9') and the shop
    # sorts integer keys as numbers: a reconciliation slice finds state's keys inside its
    # numeric key range through ix_sync_state_resource_status. Set once, when the row is
    # first written.
    sa.Column("key_number", sa.BigInteger(), nullable=True),
    sa.CheckConstraint(
        "status IN ('synced', 'pending', 'rejected', 'gone')", name="status"
    ),
    sa.Index("ix_sync_state_resource_metrilo_id", "resource", "metrilo_id"),
    # Counts by status, and (key_number last, migration 0007) a reconciliation slice's share
    # of state: per live status an index-only range on the key number, in numeric order. Part
    # of an index every write keeps anyway: an index of its own cost a push's state writes 10%.
    sa.Index("ix_sync_state_resource_status", "resource", "status", "key_number"),
)

PENDING_ONLY = sa.text("status = 'pending'")
"""The pending index's condition; a query must say it in these words (a literal, not a bound
parameter) for SQLite to use the index."""

# Pending rows, in key order: every incremental cycle lists them, and without this index that
# walks all of a resource's rows (1M for orders) to find a handful. Partial, so it stays tiny.
sa.Index(
    "ix_sync_state_pending_keys", sync_state.c.resource, sync_state.c.key,
    sqlite_where=PENDING_ONLY, postgresql_where=PENDING_ONLY,
)

RECHECK_SCHEDULED = sa.text("recheck_after IS NOT NULL")
"""The recheck index's condition (said in these words by the query, for SQLite)."""

# Rows with a recheck scheduled: every cycle asks which are due; a handful among millions.
sa.Index(
    "ix_sync_state_rechecks", sync_state.c.resource, sync_state.c.key,
    sqlite_where=RECHECK_SCHEDULED, postgresql_where=RECHECK_SCHEDULED,
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    # JSON: {resource: {scanned, new, changed, unchanged, gone, sent, rejected, ...}}
    sa.Column("counts", sa.Text(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    # "pid@host" of the process running it (migration 0006), to tell a killed one from a live one
    sa.Column("owner", sa.String(255), nullable=True),
    # JSON list of the resources it has not finished yet (migration 0006)
    sa.Column("unfinished", sa.Text(), nullable=True),
)

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("name", sa.String(), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

resync_requests = sa.Table(
    "resync_requests",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    # JSON list of resource names; an empty list means every resource.
    sa.Column("resources", sa.Text(), nullable=False),
    sa.Column("requested_at", UtcDateTime(), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=True),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.Column("requested_by", sa.Text(), nullable=True),
    # The `resync --confirm` / `--restart` flags, carried to the daemon (migration 0002).
    sa.Column("confirm", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("restart", sa.Boolean(), nullable=False, server_default=sa.false()),
)
