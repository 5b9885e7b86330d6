"""sync_state.payload: the last accepted record, for orders with `on_delete: status`.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03

Metrilo replaces every order field on upsert, so marking a deleted order with a status means
sending the whole order again; the shop no longer has it, so state keeps what Metrilo accepted.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sync_state") as batch:
        batch.add_column(sa.Column("payload", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_state") as batch:
        batch.drop_column("payload")
