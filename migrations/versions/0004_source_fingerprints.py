"""sync_state.source_fingerprint, and a partial index of pending keys.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04

A no-change cycle recognises an unchanged row by the hash of its raw source values, without
composing it; state remembers that hash for synced rows. Incremental cycles list the pending
keys of a resource; the partial index finds them without walking every row of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING_ONLY = sa.text("status = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("sync_state") as batch:
        batch.add_column(sa.Column("source_fingerprint", sa.String(32), nullable=True))
    op.create_index(
        "ix_sync_state_pending_keys", "sync_state", ["resource", "key"],
        sqlite_where=_PENDING_ONLY, postgresql_where=_PENDING_ONLY,
    )


def downgrade() -> None:
    op.drop_index("ix_sync_state_pending_keys", table_name="sync_state")
    with op.batch_alter_table("sync_state") as batch:
        batch.drop_column("source_fingerprint")
