"""Key order: how the database sorts keys, and how Python compares them the same way.

Children are merged into parents by streaming both ordered by key (a merge-join), so the
database's ORDER BY and Python's `<` must agree. Numbers sort natively on both sides. Anything
else (text, or a column whose type is unknown, as in a `query` source) sorts as text in binary
code-point order: PostgreSQL `COLLATE "C"`, MariaDB/MySQL a cast to BINARY of its UTF-8 text,
SQLite `COLLATE BINARY`; Python compares `str(value)`, which is code-point order too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql


@dataclass(frozen=True)
class KeySpan:
    """A range of keys in key order: after `after` (exclusive) up to `upto` (inclusive).

    Both are state keys (`labels.key_string`); None is an open end. A rolling reconciliation
    slice reads one span, so its queries are ranges on the key (an index serves them).
    """

    after: str | None = None
    upto: str | None = None


class KeyKind(Enum):
    NUMBER = "number"
    TEXT = "text"


KeyTuple = tuple[Any, ...]


def is_numeric(type_: sa.types.TypeEngine[Any] | None) -> bool:
    """A type both sides can sort natively (booleans excluded: MySQL reflects them as ints)."""
    return isinstance(type_, sa.Integer | sa.Numeric) and not isinstance(type_, sa.Boolean)


def key_kinds(sides: Sequence[Sequence[sa.types.TypeEngine[Any] | None]]) -> tuple[KeyKind, ...]:
    """Per key position: NUMBER only when every side (parent and children) is numeric."""
    width = len(sides[0])
    return tuple(
        KeyKind.NUMBER if all(is_numeric(side[i]) for side in sides) else KeyKind.TEXT
        for i in range(width)
    )


def order_expression(
    column: sa.ColumnElement[Any], kind: KeyKind, dialect: str
) -> sa.ColumnElement[Any]:
    """What to ORDER BY so the database sorts like `normalize` does in Python."""
    if kind is KeyKind.NUMBER:
        return column
    if dialect == "postgresql":
        return sa.cast(column, sa.Text).collate("C")
    if dialect in ("mysql", "mariadb"):
        # utf8mb4_bin pads trailing spaces ('a' = 'a '); bytes of the UTF-8 text do not.
        return sa.cast(sa.cast(column, mysql.CHAR(charset="utf8mb4")), mysql.BINARY())
    if dialect == "sqlite":
        return sa.cast(column, sa.Text).collate("BINARY")
    return sa.cast(column, sa.String)


def normalize(values: Sequence[Any], kinds: Sequence[KeyKind]) -> KeyTuple:
    """A key as Python compares it, consistent with `order_expression`."""
    return tuple(
        value if kind is KeyKind.NUMBER else _text(value)
        for value, kind in zip(values, kinds, strict=True)
    )


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def parse_key_string(key: str, width: int) -> list[str]:
    """The parts of a `labels.key_string`: the text itself, or a JSON list for composite keys."""
    if width == 1:
        return [key]
    parts = json.loads(key)
    if not isinstance(parts, list) or len(parts) != width:
        raise ValueError(f"{key!r} is not a key of {width} parts")
    return [str(p) for p in parts]


INTEGER_LOWEST, INTEGER_HIGHEST = -(2**63), 2**63 - 1  # a signed 64-bit integer (BIGINT)
_UNSIGNED_HIGHEST = 2**64 - 1  # MySQL/MariaDB's BIGINT UNSIGNED


def bind_value(text: str, type_: sa.types.TypeEngine[Any] | None) -> Any:
    """A key part back in its column's Python type, so the database can use its index."""
    try:
        if isinstance(type_, sa.Integer) and not isinstance(type_, sa.Boolean):
            number = int(text)
            # Beyond any SQL integer (BIGINT, MySQL's BIGINT UNSIGNED): no row has it, and a
            # driver would refuse to bind it (SQLite: OverflowError).
            return number if INTEGER_LOWEST <= number <= _UNSIGNED_HIGHEST else None
        if isinstance(type_, sa.Numeric):
            return Decimal(text)
    except (ValueError, InvalidOperation):
        return None  # cannot exist in a numeric column
    return text


def span_condition(
    columns: Sequence[sa.ColumnElement[Any]], kinds: Sequence[KeyKind], dialect: str,
    span: KeySpan,
) -> sa.ColumnElement[bool]:
    """`after < key <= upto` in the order `order_expression` sorts by.

    Numeric keys are compared as themselves (the primary key index serves the range); text
    keys through the same binary-order expression the reads are sorted by, which an index
    serves where the column's collation is binary. Composite keys compare as row values on
    PostgreSQL and SQLite, which range-scan an index with them; MariaDB/MySQL scan the whole
    index for a row-value comparison, so there it is spelled out column by column.
    """
    ordered = [order_expression(c, k, dialect) for c, k in zip(columns, kinds, strict=True)]
    conditions = []
    for key, upper in ((span.after, False), (span.upto, True)):
        if key is not None:
            values = _bound_values(columns, kinds, key)
            if len(ordered) == 1 or dialect not in ("mysql", "mariadb"):
                conditions.append(_compare_rows(ordered, values, upper=upper))
            else:
                conditions.append(_compare_columns(ordered, values, upper=upper))
    return sa.and_(sa.true(), *conditions)


def _bound_values(columns: Sequence[sa.ColumnElement[Any]], kinds: Sequence[KeyKind],
                  key: str) -> list[sa.ColumnElement[Any]]:
    parts = parse_key_string(key, len(columns))
    return [
        _number(part, column) if kind is KeyKind.NUMBER else sa.literal(part, sa.Text())
        for part, column, kind in zip(parts, columns, kinds, strict=True)
    ]


def _number(part: str, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A numeric key bound written into the SQL, when it is a plain number.

    A statement without parameters is read straight from the driver (driver.py: streamed,
    no SQLAlchemy Row, no FETCH round trip per batch); with one bound value, a slice's reads
    went through SQLAlchemy's server-side cursor, where the database and Python take turns:
    at 1M orders a slice's reads cost ~1.7x a full read's per row. Only an int or a finite
    Decimal is written (its own digits: nothing from the key's text reaches the SQL)."""
    value = bind_value(part, column.type)
    if type(value) is int:
        return sa.literal_column(str(value), column.type)
    if isinstance(value, Decimal) and value.is_finite():
        return sa.literal_column(format(value, "f"), column.type)
    return sa.literal(value, column.type)


def _compare_rows(ordered: Sequence[sa.ColumnElement[Any]],
                  values: Sequence[sa.ColumnElement[Any]], *,
                  upper: bool) -> sa.ColumnElement[bool]:
    left: sa.ColumnElement[Any] = ordered[0] if len(ordered) == 1 else sa.tuple_(*ordered)
    right: sa.ColumnElement[Any] = values[0] if len(values) == 1 else sa.tuple_(*values)
    return left <= right if upper else left > right


def _compare_columns(ordered: Sequence[sa.ColumnElement[Any]],
                     values: Sequence[sa.ColumnElement[Any]], *,
                     upper: bool) -> sa.ColumnElement[bool]:
    """The row comparison as `a > x OR (a = x AND b > y) ...`, with the leading column's own
    bound (`a >= x`) beside it, which the range optimizer uses."""
    terms = []
    for i, (column, value) in enumerate(zip(ordered, values, strict=True)):
        equal_before = [ordered[j] == values[j] for j in range(i)]
        terms.append(sa.and_(*equal_before, column < value if upper else column > value))
    if upper:
        terms.append(sa.and_(*(c == v for c, v in zip(ordered, values, strict=True))))
    leading = ordered[0] <= values[0] if upper else ordered[0] >= values[0]
    return sa.and_(leading, sa.or_(*terms))
