"""StateStore: the only reader and writer of the state DB.

Every call runs in its own short transaction and holds no connection between calls, so the
daemon and the CLI can share a SQLite file. The store is assembled from one part per concept
(each a StateAccess over the same engine): per-record state, the hot path (`per_record`);
per-resource questions (`per_resource`); the run history (`run_history`); meta values
(`meta_values`); resync requests (`resync_requests`).
"""

from __future__ import annotations

from types import TracebackType

import sqlalchemy as sa

from cdc_sync.errors import StateError
from cdc_sync.state import migrate, statements
from cdc_sync.state.engine import SUPPORTED_DIALECTS, checkpoint, create_state_engine
from cdc_sync.state.meta_values import MetaValues
from cdc_sync.state.per_record import PerRecordState
from cdc_sync.state.per_resource import PerResourceState
from cdc_sync.state.resync_requests import ResyncRequests
from cdc_sync.state.run_history import RunHistory


class StateStore(PerRecordState, PerResourceState, RunHistory, MetaValues, ResyncRequests):
    """Sync state per record, run history, meta values and resync requests."""

    def __init__(self, engine: sa.Engine) -> None:
        """Use `engine` (not disposed by `close`); the tables must exist (see `migrate`)."""
        dialect = engine.dialect.name
        if dialect not in SUPPORTED_DIALECTS:
            raise StateError(
                f"state DB {engine.url.render_as_string()}: {dialect} is not supported; "
                "fix: use a sqlite:/// or postgresql+psycopg:// URL for the state DB"
            )
        self._engine = engine
        self._dialect = dialect
        self._owns_engine = False
        self._hot = statements.build(engine.dialect)

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True) -> StateStore:
        """Connect to the state DB at `url`; with `upgrade`, migrate it to the latest schema."""
        engine = create_state_engine(url)
        try:
            if upgrade:
                migrate.upgrade(engine)
            store = cls(engine)
        except BaseException:
            engine.dispose()
            raise
        store._owns_engine = True
        return store

    @property
    def thread_bound(self) -> bool:
        """Whether each thread reaches a database of its own: SQLite in memory, whose pool
        (SQLAlchemy's SingletonThreadPool) gives each thread its own connection, so another
        thread would find no tables. Then every write stays on the thread that opened it
        (cycle/statewriter.py)."""
        return isinstance(self._engine.pool, sa.pool.SingletonThreadPool)

    def close(self) -> None:
        """Release the connections, if this store created the engine; on SQLite, copy what
        the write-ahead log holds into the database file first (state/checkpoints.py: the
        checkpoint thread waits for a pause, which a one-shot command does not leave it)."""
        if self._owns_engine:
            if self._dialect == "sqlite":
                checkpoint(self._engine)
            self._engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()
