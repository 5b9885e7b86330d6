"""Resync requests carry the `--confirm` and `--restart` flags to the daemon.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

`cdc-sync resync --confirm orders` typed while a daemon runs is handed to the daemon through
resync_requests; without these columns the daemon could not honour the flags.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("resync_requests") as batch:
        batch.add_column(
            sa.Column("confirm", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("restart", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("resync_requests") as batch:
        batch.drop_column("restart")
        batch.drop_column("confirm")
