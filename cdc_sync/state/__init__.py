"""The state DB: per-record sync state, run history, meta values and resync requests.

`StateStore` is the only writer; `migrate` keeps the schema at the newest Alembic revision.
"""

from __future__ import annotations

from cdc_sync.state.rows import (
    Outcome,
    ResyncRequest,
    RunRow,
    RunStatus,
    SourceMark,
    StateRow,
    Status,
)
from cdc_sync.state.store import StateStore

__all__ = [
    "Outcome", "ResyncRequest", "RunRow", "RunStatus", "SourceMark", "StateRow", "StateStore",
    "Status",
]
