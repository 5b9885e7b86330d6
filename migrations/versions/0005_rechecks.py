"""sync_state.recheck_after, and a partial index of the rows with one.

Revision ID: 0005
Revises: 0004
Create Date: 2025-01-05

A batch that Metrilo accepted after an attempt timed out may still see that attempt applied
later, over the newer version; such records are sent once more after a grace period.
The column is a plain DateTime(timezone=True), as in 0001 (migrations never import the
package's types).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SCHEDULED = sa.text("recheck_after IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("sync_state") as batch:
        batch.add_column(sa.Column("recheck_after", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_sync_state_rechecks", "sync_state", ["resource", "key"],
        sqlite_where=_SCHEDULED, postgresql_where=_SCHEDULED,
    )


def downgrade() -> None:
    op.drop_index("ix_sync_state_rechecks", table_name="sync_state")
    with op.batch_alter_table("sync_state") as batch:
        batch.drop_column("recheck_after")
