"""The types of a `query` source's columns, from the driver's description of its result.

A query's columns are learned by running it with LIMIT 0, which gives names and, on
PostgreSQL (psycopg: type OIDs) and MySQL/MariaDB (PyMySQL: protocol field types), each
column's type. Keys read back from state are bound in that type, so the database can compare
them (PostgreSQL refuses `integer = character varying`) and use its indexes; numbers sort as
numbers. Only the families a key needs are named; anything else (SQLite, which reports no
types; dates; floats) stays unknown, and such keys are compared as text (see query.key_in).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

_PG_INTEGER = frozenset({"int2", "int4", "int8", "oid"})
_PG_TEXT = frozenset({"text", "varchar", "bpchar", "name"})
_MYSQL_INTEGER = frozenset({1, 2, 3, 8, 9, 13})  # TINY SHORT LONG LONGLONG INT24 YEAR
_MYSQL_DECIMAL = frozenset({0, 246})  # DECIMAL NEWDECIMAL
_MYSQL_TEXT = frozenset({15, 253, 254})  # VARCHAR VAR_STRING STRING


def result_types(dialect: str, description: Sequence[Sequence[Any]] | None,
                 width: int) -> list[sa.types.TypeEngine[Any]]:
    """One type per result column; NullType where the driver does not say or it does not matter."""
    codes = [d[1] for d in description] if description else [None] * width
    if dialect == "postgresql":
        return [_postgresql(code) for code in codes]
    if dialect in ("mysql", "mariadb"):
        return [_mysql(code) for code in codes]
    return [sa.types.NULLTYPE for _ in codes]


def _postgresql(oid: Any) -> sa.types.TypeEngine[Any]:
    from psycopg.postgres import types  # psycopg is the PostgreSQL driver cdc-sync ships

    info = types.get(oid) if isinstance(oid, int) else None
    name = info.name if info is not None else None
    if name in _PG_INTEGER:
        return sa.BigInteger()
    if name == "numeric":
        return sa.Numeric()
    if name in _PG_TEXT:
        return sa.String()
    return sa.types.NULLTYPE


def _mysql(code: Any) -> sa.types.TypeEngine[Any]:
    if code in _MYSQL_INTEGER:
        return sa.BigInteger()
    if code in _MYSQL_DECIMAL:
        return sa.Numeric()
    if code in _MYSQL_TEXT:
        return sa.String()
    return sa.types.NULLTYPE
