"""Reads straight from the driver: no SQLAlchemy Row per row, no FETCH per batch.

SQLAlchemy's result turns each driver tuple into a Row, and its server-side cursor on
PostgreSQL fetches a batch per round trip, so PostgreSQL and Python take turns. Every read of
a cycle is compiled by SQLAlchemy and handed to the driver instead, its parameters as
SQLAlchemy would bind them (expanded, each through its type's bind processor): psycopg streams
the result in chunks (libpq's chunked rows mode: the server sends on while Python works, no
FETCH per batch; closed early, psycopg cancels the query), PyMySQL and mysqlclient read it
through their unbuffered cursors as SQLAlchemy would. A bounded read (a chunk of keys: the
pending and followed records of an incremental cycle) is fetched whole in one round trip by a
client-side cursor. Rows stay the driver's tuples, and their values are SQLAlchemy's: every
result processor it would apply to a column (none for the usual column types of PostgreSQL and
MariaDB; JSON, BIT or ENUM on MariaDB) is applied the same way, and its cursor events fire as
for its own executions, so listeners see every statement. Other drivers (SQLite's) are read
through SQLAlchemy (`stream._fetch`).
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from cdc_sync.core.deferred import Conversion

Row = Sequence[Any]
_DRIVERS = ("psycopg", "pymysql", "mysqldb")
# A statement with parameters is an incremental read: the rows changed since a mark, or a chunk
# of keys, a few rows. PostgreSQL plans its JIT compilation from the estimated cost of the whole
# table (a correlated subquery per order line), and compiled two of an incremental cycle's
# statements at 1M orders: ~50 ms of the server's CPU each, more than the reads themselves.
# Nor parallel workers: planned from a 10x estimate of the changed orders, the lines of 1,000
# of them (3,080 rows) were read by two workers started for it, 28 ms where one process
# takes 18 (load 6). One round trip: psycopg sends a text without parameters as one query.
_INCREMENTAL_READ = "SET LOCAL jit = off; SET LOCAL max_parallel_workers_per_gather = 0"


@dataclass(slots=True)
class Deferral:
    """The positions of a statement's values that may stay as the driver's bytes, and, once
    it ran, the conversions left due on them (core/deferred.py). Only a cursor that can
    (`pymysqlrows.RowsCursor.defer`) leaves any, and never on a column SQLAlchemy processes
    (JSON, BIT, ENUM on MariaDB): its processor expects the driver's converted value."""

    positions: frozenset[int]
    conversions: tuple[Conversion, ...] = ()


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """A statement as the driver takes it: its SQL and its parameters, bound."""

    sql: str
    params: Mapping[str, Any] | tuple[Any, ...]


def driver_statement(engine: sa.Engine, stmt: sa.Select[Any]) -> DriverStatement | None:
    """The statement to hand the driver, or None to read through SQLAlchemy."""
    dialect = engine.dialect
    if dialect.driver not in _DRIVERS:
        return None
    # Expanded as SQLAlchemy executes it: IN lists written out, values it renders into the
    # SQL (MariaDB's integer key lists) rendered; the others bound by their types' processors.
    compiled = stmt.compile(dialect=dialect)
    expanded = compiled.construct_expanded_state()
    # The processors SQLAlchemy applies when it executes (DefaultExecutionContext): every bind's
    # own, then those of the parameters an IN list was expanded into. The expanded state holds
    # only the latter: without the former, a join's constant 1 bound as BOOLEAN reached
    # psycopg as the int 1 and PostgreSQL refused `boolean = smallint`.
    # (A tuple's processors, a sequence, serve only its expanded elements: left out.)
    processors = {**{name: process for name, process in compiled._bind_processors.items()
                     if callable(process)}, **expanded.processors}
    params = {name: processors[name](value) if name in processors else value
              for name, value in expanded.parameters.items()}
    if expanded.positiontup is None:
        return DriverStatement(expanded.statement, params)
    return DriverStatement(expanded.statement,
                           tuple([params[name] for name in expanded.positiontup]))


def driver_batches(engine: sa.Engine, stmt: sa.Select[Any], statement: DriverStatement,
                   batch: int, failed: Callable[[BaseException], Exception], *,
                   bounded: bool = False,
                   deferral: Deferral | None = None) -> Generator[list[Row], None, None]:
    """The rows of `stmt` (compiled to `statement`), `batch` at a time; a database error is
    raised as `failed(error)`, except after the caller stopped reading (then it is no news).
    `bounded`: a few rows (a chunk of keys), fetched whole by a client-side cursor, and the
    connection handed back to the pool before the first row is handed on: the reads that
    follow it (its children's, by the same keys) take that connection instead of each
    opening one of their own (a connection opened inside a cycle: ~5 ms, and a backend on
    the server). `deferral`: values that may stay bytes (streamed reads only); it is told
    which did before the first row."""
    if bounded:
        yield from _whole(engine, stmt, statement, batch, failed)
        return
    dialect = engine.dialect
    abandoned = False
    try:
        with engine.connect() as conn:
            # SQLAlchemy's transaction, as its own reads have: closing it rolls back, and a
            # connection lost meanwhile fails the read there, even when every row had arrived.
            conn.begin()
            driver: Any = conn.connection.driver_connection
            cursor = (driver.cursor() if dialect.driver == "psycopg"
                      else driver.cursor(_unbuffered(dialect.driver)))
            rows = _rows(conn, cursor, statement, batch, streamed=True)
            defer = None if deferral is None else _deferring(cursor, deferral)
            try:
                yield from _processed(rows, stmt, dialect, batch, defer)
            except GeneratorExit:
                abandoned = True
                raise
            except dialect.loaded_dbapi.Error:
                # SQLAlchemy did not see it fail: a lost connection must not go back to the
                # pool (nor be rolled back there, which only logs a second failure).
                conn.invalidate()
                raise
            finally:
                rows.close()
                cursor.close()
    except (sa.exc.SQLAlchemyError, dialect.loaded_dbapi.Error) as exc:
        if abandoned:
            return
        raise failed(exc) from None


def _whole(engine: sa.Engine, stmt: sa.Select[Any], statement: DriverStatement, batch: int,
           failed: Callable[[BaseException], Exception]) -> list[list[Row]]:
    """A bounded read's batches, every row fetched before its connection goes back."""
    dialect = engine.dialect
    try:
        with engine.connect() as conn:
            conn.begin()  # as in driver_batches: a connection lost fails the read here
            driver: Any = conn.connection.driver_connection
            cursor = driver.cursor()
            rows = _rows(conn, cursor, statement, batch, streamed=False)
            try:
                return list(_processed(rows, stmt, dialect, batch))
            except dialect.loaded_dbapi.Error:
                conn.invalidate()  # as in driver_batches
                raise
            finally:
                rows.close()
                cursor.close()
    except (sa.exc.SQLAlchemyError, dialect.loaded_dbapi.Error) as exc:
        raise failed(exc) from None


def _rows(conn: sa.Connection, cursor: Any, statement: DriverStatement, batch: int, *,
          streamed: bool) -> Generator[Any, None, None]:
    """The result's description, then its rows."""
    sql, params = statement.sql, statement.params
    if params and conn.dialect.name == "postgresql":
        cursor.execute(_INCREMENTAL_READ)  # for this transaction only
    for listener in conn.dispatch.before_cursor_execute:
        sql, params = listener(conn, cursor, sql, params, None, False)
    # Parameters are always given (if none, empty) so that the driver reads `%%` as
    # SQLAlchemy's escaped `%`.
    if streamed and hasattr(cursor, "stream"):  # psycopg
        rows: Iterator[Any] = cursor.stream(sql, params, size=batch)
        first = next(rows, None)  # the description is known once the first chunk arrived
        rows = itertools.chain(() if first is None else (first,), rows)
    else:
        cursor.execute(sql, params)
        rows = _fetched(cursor, batch)
    conn.dispatch.after_cursor_execute(conn, cursor, sql, params, None, False)
    yield cursor.description or ()
    yield from rows


def _fetched(cursor: Any, batch: int) -> Iterator[Any]:
    while chunk := cursor.fetchmany(batch):
        yield from chunk


def _unbuffered(driver: str) -> Any:
    """The unbuffered cursor class of a MySQL driver (imported here: PostgreSQL shops need
    neither, and mysqlclient is optional); PyMySQL's with its rows parsed in one loop
    where its version was checked for that."""
    if driver == "mysqldb":
        return importlib.import_module("MySQLdb.cursors").SSCursor
    import pymysql

    from cdc_sync.source.pymysqlrows import unbuffered_cursor

    return unbuffered_cursor(pymysql.VERSION)


def _deferring(cursor: Any, deferral: Deferral) -> Callable[[Sequence[int]], None] | None:
    """What leaves the values at these positions (and the deferral's) as bytes; None where
    the cursor cannot (psycopg, mysqlclient, PyMySQL's own cursors)."""
    defer = getattr(cursor, "defer", None)
    if defer is None:
        return None

    def deferring(unprocessed: Sequence[int]) -> None:
        deferral.conversions = defer(deferral.positions.intersection(unprocessed))
    return deferring


def _processed(rows: Generator[Any, None, None], stmt: sa.Select[Any], dialect: sa.Dialect,
               batch: int, defer: Callable[[Sequence[int]], None] | None = None
               ) -> Iterator[list[Row]]:
    """`batch` rows at a time, each value processed as SQLAlchemy's result would. `defer`
    is handed the positions without a processor, before any row is parsed."""
    description = next(rows)
    # Empty only when psycopg found no row (its description comes with the first chunk).
    processors = _processors(stmt, dialect, description) if description else []
    if defer is not None and processors:
        defer([at for at, process in enumerate(processors) if process is None])
    chunk = list(itertools.islice(rows, batch))
    if not chunk:
        return
    convert = _row_converter(processors)
    while chunk:
        yield chunk if convert is None else [convert(row) for row in chunk]
        chunk = list(itertools.islice(rows, batch))


def _processors(stmt: sa.Select[Any], dialect: sa.Dialect,
                description: Sequence[Sequence[Any]]) -> list[Callable[[Any], Any] | None]:
    """SQLAlchemy's result processor of each of the statement's columns (None: none)."""
    return [
        column.type.dialect_impl(dialect).result_processor(dialect, described[1])
        for column, described in zip(stmt.selected_columns, description, strict=True)
    ]


def _row_converter(processors: Sequence[Callable[[Any], Any] | None]
                   ) -> Callable[[Row], Row] | None:
    """A row's values through their processors; None when there are none."""
    if not any(processors):
        return None

    def convert(row: Row) -> Row:
        return tuple([value if process is None else process(value)
                      for process, value in zip(processors, row)])  # noqa: B905 - same select
    return convert
