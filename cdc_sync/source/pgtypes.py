"""PostgreSQL dates a shop may hold that Python cannot: `infinity`, years past 9999.

psycopg raises on loading them, which would stop a whole resource mid-stream. These loaders
hand such values over as text instead, so compose rejects just that record with its reason
("createdAt: value 'infinity' is not a timestamp").
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.datetime import DateLoader, TimestampLoader, TimestamptzLoader


class _LenientDate(DateLoader):
    def load(self, data: Any) -> Any:
        try:
            return super().load(data)
        except psycopg.DataError:
            return bytes(data).decode("utf-8", errors="replace")


class _LenientTimestamp(TimestampLoader):
    def load(self, data: Any) -> Any:
        try:
            return super().load(data)
        except psycopg.DataError:
            return bytes(data).decode("utf-8", errors="replace")


class _LenientTimestamptz(TimestamptzLoader):
    def load(self, data: Any) -> Any:
        try:
            return super().load(data)
        except psycopg.DataError:
            return bytes(data).decode("utf-8", errors="replace")


def register_lenient_dates(dbapi_connection: Any, _record: Any) -> None:
    """SQLAlchemy `connect` listener for psycopg 3 shop connections."""
    adapters = getattr(dbapi_connection, "adapters", None)
    if adapters is None:  # another driver: it has its own rules
        return
    adapters.register_loader("date", _LenientDate)
    adapters.register_loader("timestamp", _LenientTimestamp)
    adapters.register_loader("timestamptz", _LenientTimestamptz)
