"""runs.owner and runs.unfinished: who runs a cycle, and what it has not finished yet.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

`cdc-sync status` must not show the cycle of a process that was killed (SIGKILL, power loss)
as still running: `owner` ("pid@host") lets it see the process is gone. A cycle stopped early
(SIGTERM) or killed lists in `unfinished` (JSON list of resources) what the next cycle still
has to read and send.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(255), nullable=True))
        batch.add_column(sa.Column("unfinished", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("unfinished")
        batch.drop_column("owner")
