"""The state tables: sync_state, runs, meta, resync_requests.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Hand-written to match cdc_sync/state/tables.py exactly (tests/test_migrations.py checks).
Timestamps are plain DateTime(timezone=True): the UtcDateTime decorator only adds Python-side
conversion, so migrations never import the package's types.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_state",
        sa.Column("resource", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("metrilo_id", sa.String(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("synced_fingerprint", sa.String(64), nullable=True),
        sa.Column("attempt_fingerprint", sa.String(64), nullable=True),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('synced', 'pending', 'rejected', 'gone')", name="ck_sync_state_status"
        ),
        sa.PrimaryKeyConstraint("resource", "key", name="pk_sync_state"),
    )
    op.create_index(
        "ix_sync_state_resource_metrilo_id", "sync_state", ["resource", "metrilo_id"]
    )
    op.create_index("ix_sync_state_resource_status", "sync_state", ["resource", "status"])

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("counts", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )

    op.create_table(
        "meta",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_meta"),
    )

    op.create_table(
        "resync_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("resources", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requested_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_resync_requests"),
    )


def downgrade() -> None:
    op.drop_table("resync_requests")
    op.drop_table("meta")
    op.drop_table("runs")
    op.drop_index("ix_sync_state_resource_status", table_name="sync_state")
    op.drop_index("ix_sync_state_resource_metrilo_id", table_name="sync_state")
    op.drop_table("sync_state")
