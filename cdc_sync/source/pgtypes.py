"""PostgreSQL dates a shop may hold that Python cannot: `infinity`, years past 9999.

psycopg raises on loading them, which would stop a whole resource mid-stream. These loaders
hand such values over as text instead, so compose rejects just that record with its reason
("createdAt: value 'infinity' is not a timestamp").

Each one wraps the loader psycopg would use anyway (its C implementation from psycopg-binary)
instead of subclassing psycopg's pure-Python classes: those parse every date in Python, about
3.6 us a value against 0.3 us, which was a tenth of a no-change cycle's CPU (bench/README.md).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import abc
from psycopg.adapt import Loader
from psycopg.pq import Format

_DATE_TYPES = ("date", "timestamp", "timestamptz")


def _lenient(base: type[abc.Loader]) -> type[Loader]:
    """A text loader that loads as `base` does, or hands the value over as text."""

    class Lenient(Loader):
        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._load = base(oid, context).load

        def load(self, data: Any) -> Any:
            try:
                return self._load(data)
            except psycopg.DataError:
                return bytes(data).decode("utf-8", errors="replace")

    Lenient.__name__ = Lenient.__qualname__ = f"Lenient{base.__name__}"
    return Lenient


def _text_loader(name: str) -> type[abc.Loader]:
    """psycopg's own text loader for a type (its C one when psycopg-binary is installed)."""
    loader = psycopg.adapters.get_loader(psycopg.adapters.types[name].oid, Format.TEXT)
    assert loader is not None  # psycopg registers a loader for every date type
    return loader


_LENIENT = {name: _lenient(_text_loader(name)) for name in _DATE_TYPES}  # built once


def register_lenient_dates(dbapi_connection: Any, _record: Any) -> None:
    """SQLAlchemy `connect` listener for psycopg 3 shop connections."""
    adapters = getattr(dbapi_connection, "adapters", None)
    if adapters is None:  # another driver: it has its own rules
        return
    for name, loader in _LENIENT.items():
        adapters.register_loader(name, loader)
