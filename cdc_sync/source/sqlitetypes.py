"""SQLite date and time text that SQLAlchemy cannot parse: `0000-00-00 00:00:00`, `2024-02-30`.

SQLite keeps DATE/DATETIME/TIME as text, and SQLAlchemy's result processor raises ValueError
on text that is not a real date, which would stop a whole resource mid-stream. Reflected
columns of those types get these variants instead, which hand such a value over as the text
it is, so compose rejects just that record with its reason ("createdAt: value
'0000-00-00 00:00:00' is not a timestamp"). They are the same SQLite types otherwise
(binding, comparisons, isinstance checks), so cursors and type checks are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect

_Processor = Callable[[Any], Any]


def _lenient(inner: _Processor | None) -> _Processor | None:
    if inner is None:
        return None

    def process(value: Any) -> Any:
        try:
            return inner(value)
        except ValueError:
            return value  # the text as stored; compose says why it is not a date
    return process


class LenientDateTime(sqlite.DATETIME):
    def result_processor(self, dialect: Dialect, coltype: object) -> _Processor | None:
        return _lenient(super().result_processor(dialect, coltype))


class LenientDate(sqlite.DATE):
    def result_processor(self, dialect: Dialect, coltype: object) -> _Processor | None:
        return _lenient(super().result_processor(dialect, coltype))


class LenientTime(sqlite.TIME):
    def result_processor(self, dialect: Dialect, coltype: object) -> _Processor | None:
        inner = super().result_processor(dialect, coltype)  # type: ignore[no-untyped-call]
        return _lenient(inner)


def lenient_type(type_: sa.types.TypeEngine[Any]) -> sa.types.TypeEngine[Any]:
    """The lenient variant of a reflected SQLite date/time type; any other type as it is."""
    # DATETIME before DATE: in SQLAlchemy neither subclasses the other, but be explicit.
    if isinstance(type_, sa.DateTime):
        return LenientDateTime()  # type: ignore[no-untyped-call]
    if isinstance(type_, sa.Date):
        return LenientDate()  # type: ignore[no-untyped-call]
    if isinstance(type_, sa.Time):
        return LenientTime()  # type: ignore[no-untyped-call]
    return type_
