"""The shop's schema as far as the mapping names it: reflected tables and user queries.

Only the tables a mapping names are reflected (a shop may have thousands). A `query` source
becomes a subquery whose columns are learned by running it with LIMIT 0, so key order, cursor
filters and existence checks wrap around it like around a table.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import ReflectedColumn, ReflectedPrimaryKeyConstraint
from sqlalchemy.engine.reflection import ObjectKind, ObjectScope

from cdc_sync.errors import QueryFailed
from cdc_sync.source.connect import database_message
from cdc_sync.source.resulttypes import result_types
from cdc_sync.source.sqlitetypes import lenient_type


@dataclass(frozen=True)
class Relation:
    """Where rows come from: a reflected table, or a user query as a named subquery."""

    label: str  # for messages: the table name, or "query"
    from_clause: sa.FromClause
    primary_key: tuple[str, ...] = ()
    is_query: bool = False

    def column(self, name: str) -> sa.ColumnElement[Any] | None:
        return self.from_clause.c.get(name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.from_clause.c]

    def column_fix(self, name: str) -> str:
        """The fix for a missing column `name`: the closest one there, then all of them."""
        close = difflib.get_close_matches(name, self.column_names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{hint}columns there: {', '.join(self.column_names)}"

    def aliased(self, name: str) -> Relation:
        """The same rows under another name, to join or correlate without clashes."""
        return Relation(self.label, self.from_clause.alias(name), self.primary_key, self.is_query)


class ShopSchema:
    """Reflects named tables on first use and remembers them (and the names it could not find)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._metadata = sa.MetaData()
        self._tables: dict[str, sa.Table | None] = {}
        self._queries: dict[str, Relation] = {}
        self._names: dict[str | None, list[str]] = {}

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def table(self, name: str) -> Relation | None:
        """The table (or view) `name` or `schema.name`, or None when it does not exist."""
        if name not in self._tables:
            self._tables[name] = self._reflect(name)
        table = self._tables[name]
        if table is None:
            return None
        primary_key = tuple(c.name for c in table.primary_key.columns)
        return Relation(name, table, primary_key)

    def prefetch(self, names: Iterable[str]) -> None:
        """Reflect these tables in one pass, before `table` asks for them one by one.

        `cdc-sync sync` checks the mapping against the schema at every start: one catalog
        query per table and per kind of fact (on PostgreSQL two or three for every table the
        mapping names) cost a few milliseconds each, ten tables 0.1-0.3 s. SQLAlchemy's
        multi-table reflection asks the catalog once for all of them (PostgreSQL; other
        dialects loop inside one connection). Names it does not find (another schema,
        another spelling, no such table) are left to `table`, which looks each up as before.
        """
        wanted = [n for n in dict.fromkeys(names) if n not in self._tables and "." not in n]
        if len(wanted) < 2:
            return
        # Any kind and scope, names given: the default implementation then takes the names
        # as they are instead of listing every table of the schema first.
        kind, scope = ObjectKind.ANY, ObjectScope.ANY
        with self._engine.connect() as conn:
            inspector = sa.inspect(conn)
            columns = inspector.get_multi_columns(kind=kind, scope=scope, filter_names=wanted)
            keys = inspector.get_multi_pk_constraint(kind=kind, scope=scope,
                                                     filter_names=wanted)
        for (_, name), reflected in columns.items():
            if reflected and name in wanted:
                self._tables[name] = self._table(name, None, reflected,
                                                 keys.get((None, name)) or {})

    def suggest(self, name: str) -> str | None:
        """The closest existing table name, for "did you mean"."""
        schema, _, bare = name.rpartition(".")
        candidates = self._table_names(schema or None)
        found = difflib.get_close_matches(bare, candidates, n=1, cutoff=0.6)
        if not found:
            found = [c for c in candidates if c.lower() == bare.lower()]
        if not found:
            return None
        return f"{schema}.{found[0]}" if schema else found[0]

    def query(self, sql: str, name: str) -> Relation:
        """A user query as subquery `name`; raises QueryFailed with the database's message."""
        cache_key = f"{name}\0{sql}"
        if cache_key not in self._queries:
            self._queries[cache_key] = self._query_relation(sql, name)
        return self._queries[cache_key]

    def _query_relation(self, sql: str, name: str) -> Relation:
        probe = sa.select(sa.text("*")).select_from(sa.text(f"({sql}) AS cdc_probe")).limit(0)
        try:
            with self._engine.connect() as conn:
                result = conn.execute(probe)
                names = list(result.keys())
                types = result_types(self.dialect, result.cursor.description, len(names))
        except sa.exc.DBAPIError as exc:
            raise QueryFailed(database_message(exc, self._engine)) from None
        columns = [sa.column(n, t) for n, t in zip(names, types, strict=True)]
        subquery = sa.text(sql).columns(*columns).subquery(name)
        return Relation("query", subquery, is_query=True)

    def _reflect(self, name: str) -> sa.Table | None:
        # Columns and the primary key are all a read needs. A full reflection also reads
        # indexes, foreign keys, constraints and comments: several catalog queries more per
        # table (about 4x the time on PostgreSQL) at the start of every `cdc-sync sync`.
        schema, _, bare = name.rpartition(".")
        try:
            with self._engine.connect() as conn:
                inspector = sa.inspect(conn)
                if schema and schema not in inspector.get_schema_names():
                    return None  # SQLite and others fail on an unknown schema, not return
                columns = inspector.get_columns(bare, schema or None)
                primary_key = inspector.get_pk_constraint(bare, schema or None)
        except sa.exc.NoSuchTableError:
            return None
        if not columns:
            return None
        return self._table(bare, schema or None, columns, primary_key)

    def _table(self, name: str, schema: str | None, columns: Sequence[ReflectedColumn],
               primary_key: ReflectedPrimaryKeyConstraint | dict[str, Any]) -> sa.Table:
        readable = lenient_type if self.dialect == "sqlite" else _as_reflected
        return sa.Table(
            name, self._metadata,
            *(sa.Column(column["name"], readable(column["type"])) for column in columns),
            sa.PrimaryKeyConstraint(*(primary_key.get("constrained_columns") or ())),
            schema=schema,
        )

    def _table_names(self, schema: str | None) -> list[str]:
        if schema not in self._names:
            with self._engine.connect() as conn:
                inspector = sa.inspect(conn)
                try:
                    names = inspector.get_table_names(schema) + inspector.get_view_names(schema)
                except sa.exc.SQLAlchemyError:
                    names = []  # an unknown schema: no suggestions
            self._names[schema] = names
        return self._names[schema]


def _as_reflected(type_: sa.types.TypeEngine[Any]) -> sa.types.TypeEngine[Any]:
    return type_
