"""The shop's schema as `SchemaFacts`: every table's columns, keys, foreign keys, row counts.

Reads only (the engine is the read-only shop engine). Row counts stop at FACT_ROWS (choosing
tables needs only "empty or not" and rough sizes), so a shop with hundreds of tables and
millions of orders costs a bounded scan; status and flag columns get a few distinct values
so init can say what they hold.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from cdc_sync.init.facts import ColumnFact, Kind, Reference, SchemaFacts, TableFact

COUNT_CAP = 100_000  # the summary's counts of what each resource reads
FACT_ROWS = 1_000
_VALUES = 20
# Columns whose distinct values init reads: statuses, flags, types (short, few values).
_SAMPLED = re.compile(r"(status|state|newsletter|subscri|optin|opt_in|marketing|type|active)",
                      re.IGNORECASE)


def reflect_facts(engine: sa.Engine) -> SchemaFacts:
    """Facts of every table in the default schema."""
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        names = sorted(inspector.get_table_names())
        tables = tuple(_table(conn, inspector, name) for name in names)
    return SchemaFacts(engine.dialect.name, tables)


def _table(conn: sa.Connection, inspector: sa.Inspector, name: str) -> TableFact:
    raw_columns = inspector.get_columns(name)
    primary_key = tuple(inspector.get_pk_constraint(name).get("constrained_columns") or ())
    foreign_keys = tuple(
        Reference(tuple(fk["constrained_columns"]), fk["referred_table"],
                  tuple(fk["referred_columns"]))
        for fk in inspector.get_foreign_keys(name)
        if fk.get("referred_table") and fk.get("constrained_columns")
    )
    table = sa.table(name, *(sa.column(c["name"]) for c in raw_columns))
    rows = _count(conn, table)
    columns = tuple(_column(conn, table, c, rows) for c in raw_columns)
    return TableFact(name, columns, primary_key, foreign_keys, rows)


def _count(conn: sa.Connection, table: sa.TableClause) -> int:
    capped = sa.select(sa.literal(1)).select_from(table).limit(FACT_ROWS).subquery()
    return int(conn.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one())


def _column(conn: sa.Connection, table: sa.TableClause, raw: Any, rows: int) -> ColumnFact:
    kind = kind_of(raw["type"])
    length = getattr(raw["type"], "length", None)
    values: tuple[str, ...] = ()
    if rows and kind in (Kind.TEXT, Kind.INTEGER, Kind.BOOLEAN) and _SAMPLED.search(raw["name"]):
        values = _distinct(conn, table, raw["name"])
    return ColumnFact(raw["name"], kind, length if isinstance(length, int) else None, values)


def _distinct(conn: sa.Connection, table: sa.TableClause, name: str) -> tuple[str, ...]:
    column = table.c[name]
    stmt = sa.select(column).where(column.is_not(None)).distinct().order_by(column).limit(_VALUES)
    return tuple(str(value) for value in conn.execute(stmt).scalars())


def kind_of(type_: sa.types.TypeEngine[Any]) -> Kind:
    """What a reflected column type means for choosing fields."""
    if isinstance(type_, sa.Boolean):
        return Kind.BOOLEAN
    if isinstance(type_, sa.Integer):
        return Kind.INTEGER
    if isinstance(type_, (sa.Numeric, sa.Float)):
        return Kind.NUMBER
    if isinstance(type_, (sa.DateTime, sa.Date)):
        return Kind.DATE
    if isinstance(type_, (sa.String, sa.Text)):
        return Kind.TEXT
    return Kind.OTHER
