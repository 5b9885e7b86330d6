"""What every part of the StateStore shares: the engine, its dialect, the prebuilt hot
statements, and the short transactions every call runs in (see `store`)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from cdc_sync.state.engine import state_errors
from cdc_sync.state.statements import HotStatements


def utc_now() -> datetime:
    return datetime.now(UTC)


class StateAccess:
    """The base of the StateStore's parts; `StateStore.__init__` sets these attributes."""

    _engine: sa.Engine
    _dialect: str
    _hot: HotStatements

    def _errors(self, action: str) -> AbstractContextManager[None]:
        return state_errors(self._engine.url, action)

    def _fetch(self, action: str, stmt: sa.Select[Any]) -> list[Any]:
        # Bounded by the statement's LIMIT / GROUP BY / the caller's chunk, never a table.
        with self._errors(action), self._engine.connect() as conn:
            return list(conn.execute(stmt).all())  # one fetchall, not a fetchone a row

    def _scalar_int(self, action: str, stmt: sa.Select[Any]) -> int:
        with self._errors(action), self._engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def _insert_returning_id(self, action: str, stmt: sa.Insert) -> int:
        with self._errors(action), self._engine.begin() as conn:
            key = conn.execute(stmt).inserted_primary_key
        assert key is not None, "an INSERT of one row has a primary key"
        return int(key[0])

    def _update(self, action: str, stmt: sa.Update) -> int:
        with self._errors(action), self._engine.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def _write(self, action: str, stmt: sa.Executable, params: list[dict[str, Any]]) -> None:
        with self._errors(action), self._engine.begin() as conn:
            conn.execute(stmt, params)

    def _write_sql(self, action: str, sql: str, params: list[tuple[Any, ...]]) -> None:
        with self._errors(action), self._engine.begin() as conn:
            conn.exec_driver_sql(sql, params)
