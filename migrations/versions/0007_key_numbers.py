"""sync_state.key_number: integer keys as numbers, indexed after each resource's status.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

State sorts its keys as text ('10' before '9'); the shop sorts integer keys as numbers. A
rolling reconciliation slice reads the shop's keys in a numeric range, and finds the keys
state holds in that same range through the (resource, status) index, which now ends with
this column (an index of its own cost a push's state writes ~10%), to tell which left the shop.
Existing rows are filled here with the rule cdc_sync.state.columns.key_number applies to new
ones: the key is exactly the text of a signed 64-bit integer ('12', '-3'; not '012', '-0',
'+5', ' 5', an email, a composite key's JSON), else NULL. A row the rule leaves NULL is
still checked, once per window (cycle/reconcile.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite: CAST saturates beyond 64 bits and stops at the first non-digit, so a key is an
# integer's own text exactly when casting it there and back gives the key again.
_FILL_SQLITE = (
    "UPDATE sync_state SET key_number = CAST(key AS INTEGER) "
    "WHERE CAST(CAST(key AS INTEGER) AS TEXT) = key"
)
# PostgreSQL: the text form first (no leading zeros, no '-0'), then the range through numeric
# (a CASE, so no cast runs on a key that is not digits: WHERE's order is not guaranteed).
_FILL_POSTGRESQL = (
    "UPDATE sync_state SET key_number = CASE "
    "WHEN key::numeric BETWEEN -9223372036854775808 AND 9223372036854775807 "
    "THEN key::bigint END "
    "WHERE key ~ '^(0|-?[1-9][0-9]{0,18})$'"
)


def upgrade() -> None:
    with op.batch_alter_table("sync_state") as batch:
        batch.add_column(sa.Column("key_number", sa.BigInteger(), nullable=True))
    bind = op.get_bind()
    op.execute(_FILL_SQLITE if bind.dialect.name == "sqlite" else _FILL_POSTGRESQL)
    op.drop_index("ix_sync_state_resource_status", table_name="sync_state")
    op.create_index(
        "ix_sync_state_resource_status", "sync_state", ["resource", "status", "key_number"],
    )


def downgrade() -> None:
    op.drop_index("ix_sync_state_resource_status", table_name="sync_state")
    op.create_index("ix_sync_state_resource_status", "sync_state", ["resource", "status"])
    with op.batch_alter_table("sync_state") as batch:
        batch.drop_column("key_number")
