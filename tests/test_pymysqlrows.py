"""PyMySQL's unbuffered rows parsed in one loop (source/pymysqlrows.py) are PyMySQL's rows:
the same values of the same types, the same end of the result, the same fallbacks."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest
import sqlalchemy as sa
from pymysql.cursors import SSCursor

from cdc_sync.core.deferred import Deferred, Due
from cdc_sync.source.connect import connect_shop
from cdc_sync.source.mysqltypes import pymysql_connect_args
from cdc_sync.source.pymysqlrows import (
    CHECKED_VERSIONS,
    RowsCursor,
    _payload,
    parse_row,
    unbuffered_cursor,
)
from cdc_sync.source.stream import stream
from helpers.statements import Statements

# Every kind of length prefix (1, 2, 3 bytes), NULLs between values, text PyMySQL decodes,
# bytes it does not, and each conversion it applies.
_COLUMNS = (
    "id INT PRIMARY KEY, i BIGINT, u BIGINT UNSIGNED, d DECIMAL(12,2), f DOUBLE, "
    "s VARCHAR(300), t MEDIUMTEXT, b BLOB, dt DATETIME(3), da DATE, ti TIME, e ENUM('x','y'), "
    "bits BIT(8), j JSON"
)
_ROWS = [
    "(1, -9223372036854775808, 18446744073709551615, 1234567890.12, 1.5e-7, '', 'short', "
    "x'00ff', '2024-09-25 03:07:45.120', '2024-02-29', '-838:59:59', 'x', b'10100101', "
    "'{\"a\": [1, 2]}')",
    "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(3, 0, 0, -0.01, 0, REPEAT('é', 300), REPEAT('long ', 60), REPEAT(x'41', 300), "
    "'0000-00-00 00:00:00', '0000-00-00', '00:00:00.5', 'y', b'0', 'null')",
    "(4, 42, 7, 0, -2.5, 'Zoë 🛒', REPEAT('x', 70000), REPEAT(x'fe', 70000), NULL, NULL, "
    "NULL, NULL, NULL, '[]')",
]
_SELECT = "SELECT * FROM t ORDER BY id"


@pytest.fixture
def shop(mysql_url: str) -> str:
    setup = sa.create_engine(mysql_url)
    with setup.begin() as conn:
        conn.execute(sa.text("SET SESSION sql_mode = ''"))  # zero dates, as legacy shops have
        conn.execute(sa.text(f"CREATE TABLE t ({_COLUMNS})"))
        conn.execute(sa.text(f"INSERT INTO t VALUES {', '.join(_ROWS)}"))
        # More rows than a small fetch, for fetches that end mid-batch and on a boundary.
        conn.execute(sa.text(
            "INSERT INTO t (id, i, s) SELECT seq, seq * 3, CONCAT('row ', seq) "
            "FROM seq_10_to_49"))
    setup.dispose()
    return mysql_url


def _connect(url: str) -> Any:
    parts = sa.make_url(url)
    return pymysql.connect(host=parts.host, port=parts.port or 3306, user=parts.username,
                           password=parts.password or "", database=parts.database,
                           **pymysql_connect_args())


def _fetched(url: str, cursor_class: type[Any], size: int) -> tuple[list[Any], Any]:
    connection = _connect(url)
    try:
        cursor = connection.cursor(cursor_class)
        cursor.execute(_SELECT)
        batches = []
        while batch := cursor.fetchmany(size):
            batches.append(list(batch))
        ended = (cursor.fetchmany(size), cursor.rownumber, cursor.warning_count)
        cursor.close()
        # The connection is free for the next statement, as after PyMySQL's own read.
        with connection.cursor() as again:
            again.execute("SELECT 1")
            assert again.fetchall() == ((1,),)
    finally:
        connection.close()
    return batches, ended


def _typed(batches: list[Any]) -> list[Any]:
    return [[[(type(value), value) for value in row] for row in batch] for batch in batches]


@pytest.mark.parametrize("size", [1, 3, 44, 1000])
def test_rows_are_the_values_and_types_pymysql_reads(shop: str, size: int) -> None:
    expected, expected_end = _fetched(shop, SSCursor, size)
    got, end = _fetched(shop, RowsCursor, size)
    assert _typed(got) == _typed(expected)
    assert end == expected_end
    assert sum(len(batch) for batch in got) == 44


def test_a_full_read_of_a_mariadb_shop_goes_through_the_one_loop(shop: str) -> None:
    engine = connect_shop(shop)
    try:
        with Statements(engine) as seen:
            table = sa.Table("t", sa.MetaData(), autoload_with=engine)
            rows = list(stream(engine, sa.select(table).order_by(table.c.id),
                               doing="reading t", batch=7).rows)
    finally:
        engine.dispose()
    assert RowsCursor in [sent.cursor for sent in seen.statements]
    expected, _ = _fetched(shop, SSCursor, 1000)
    assert [row[0] for row in rows] == [row[0] for row in expected[0]]
    # Integers, decimals and text (SQLAlchemy's own processors change a DOUBLE's type).
    kept = (0, 1, 2, 3, 5)
    assert [(type(row[i]), row[i]) for row in rows for i in kept] == \
        [(type(row[i]), row[i]) for row in expected[0] for i in kept]


def _deferred_fetch(url: str, positions: range, size: int) -> tuple[list[Any], Any]:
    """Every row read with the values at `positions` left as bytes; their conversions."""
    connection = _connect(url)
    try:
        cursor = connection.cursor(RowsCursor)
        cursor.execute(_SELECT)
        conversions = cursor.defer(positions)
        rows = []
        while batch := cursor.fetchmany(size):
            rows.extend(batch)
        cursor.close()
    finally:
        connection.close()
    return rows, conversions


@pytest.mark.parametrize("size", [3, 1000])  # mid-batch and whole: PyMySQL's parser too
def test_values_left_as_bytes_convert_to_the_values_and_types_pymysql_reads(
        shop: str, size: int) -> None:
    width = len(_COLUMNS.split(", "))
    rows, conversions = _deferred_fetch(shop, range(1, width), size)
    expected = [row for batch in _fetched(shop, SSCursor, 1000)[0] for row in batch]
    # What PyMySQL makes objects of is read as bytes (DECIMAL, DATETIME, DATE, TIME: its
    # timedelta); text and numbers as it reads them, converted (the key too).
    assert [at for at, _encoding, _converter in conversions] == [3, 8, 9, 10]
    assert {type(row[at]) for row in rows for at in (3, 8, 9, 10)} == {bytes, type(None)}
    assert [row[:3] + row[4:8] for row in rows] == [row[:3] + row[4:8] for row in expected]
    deferred = Deferred(Due(width, conversions), ())
    finished = [deferred.finish(row, ())[0] for row in rows]
    assert _typed([finished]) == _typed([expected])
    assert [deferred.finish_each(row, ())[0] for row in rows] == finished
    # A row shorter than its stream's (PyMySQL's parser may stop short): each value that is.
    assert deferred.finish(rows[0][:5], ()) == deferred.finish_each(rows[0][:5], ())
    assert deferred.finish(rows[0][:5], ())[0] == tuple(expected[0][:5])


def test_a_stream_defers_only_what_sqlalchemy_does_not_process(shop: str) -> None:
    # TIME (like DOUBLE, ENUM and BIT) goes through SQLAlchemy's result processors, which
    # take the driver's converted values: it is converted as read; DECIMAL, DATETIME and
    # DATE convert after.
    engine = connect_shop(shop)
    try:
        table = sa.Table("t", sa.MetaData(), autoload_with=engine)
        stmt = sa.select(table).order_by(table.c.id)
        plain = stream(engine, stmt, doing="reading t", batch=7)
        expected = list(plain.rows)
        deferring = stream(engine, stmt, doing="reading t", batch=7,
                           deferrable=range(1, len(table.columns)))
        rows = list(deferring.rows)
    finally:
        engine.dispose()
    deferred_at = {at for at, _encoding, _converter in deferring.deferred}
    assert deferred_at == {3, 8, 9}  # d, dt, da: not ti (SQLAlchemy's TIME processes it)
    assert plain.deferred == ()
    deferred = Deferred(Due(len(table.columns), deferring.deferred), ())
    assert _typed([[deferred.finish(row, ())[0] for row in rows]]) == _typed([expected])


def test_only_the_pymysql_versions_checked_read_through_the_one_loop() -> None:
    # The installed PyMySQL must be one of them: a new release fails here (and reads through
    # PyMySQL's own cursor, slower but right) until this file's tests pass on it.
    assert tuple(pymysql.VERSION[:2]) in CHECKED_VERSIONS
    assert unbuffered_cursor(pymysql.VERSION) is RowsCursor
    for other in ((1, 1, 1, "final"), (1, 3, 0, "final"), (2, 0, 0, "final")):
        assert unbuffered_cursor(other) is SSCursor


_TEXT = ("utf8", None)
_INT = (None, int)


def test_a_row_is_parsed_from_every_length_prefix() -> None:
    data = (b"\x03abc" + b"\xfb" + b"\xfc\x2c\x01" + b"x" * 300 + b"\xfd\x70\x11\x01"
            + b"y" * 70_000 + b"\x0212" + b"\xff")
    row = parse_row(data, 0, [_TEXT, _TEXT, _TEXT, _TEXT, _INT, _TEXT])
    assert row == ("abc", None, "x" * 300, "y" * 70_000, 12, None)


def test_a_row_that_does_not_fit_its_columns_is_left_to_pymysql() -> None:
    # Fewer values than columns (PyMySQL returns the shorter row), a value cut short, a
    # length prefix cut short (PyMySQL raises on both): parse_row declines each.
    assert parse_row(b"\x01a", 0, [_TEXT, _TEXT]) is None
    assert parse_row(b"\x05ab", 0, [_TEXT]) is None
    assert parse_row(b"\xfc\x01", 0, [_TEXT]) is None
    # Bytes after the last column are ignored, as PyMySQL ignores them.
    assert parse_row(b"\x01a\x01b", 0, [_TEXT]) == ("a",)


def test_an_error_mid_result_and_a_lost_connection_raise_as_pymysql_raises(shop: str) -> None:
    setup = sa.create_engine(shop)
    with setup.begin() as conn:
        conn.execute(sa.text("CREATE TABLE g (id INT PRIMARY KEY, k INT)"))
        # Row 30's subquery finds two rows: the server's error comes after 29 rows.
        conn.execute(sa.text("INSERT INTO g VALUES (1, 30), (2, 30), (3, 31)"))
    setup.dispose()
    failing = "SELECT id, (SELECT g.id FROM g WHERE g.k = t.id) FROM t ORDER BY id"
    raised = {}
    for cursor_class in (SSCursor, RowsCursor):
        connection = _connect(shop)
        cursor = connection.cursor(cursor_class)
        cursor.execute(failing)
        got: list[Any] = []
        with pytest.raises(pymysql.err.MySQLError) as caught:
            _drain(cursor, 7, got)
        raised[cursor_class] = (type(caught.value), caught.value.args[0], len(got))
        connection.close()
    assert raised[RowsCursor] == raised[SSCursor]
    assert raised[RowsCursor][1] == 1242  # subquery returns more than 1 row

    connection, admin = _connect(shop), _connect(shop)
    try:
        cursor = connection.cursor(RowsCursor)
        cursor.execute("SELECT a.id FROM t a, t b, t c, t d")  # 48^4 rows: still streaming
        assert len(cursor.fetchmany(10)) == 10
        with admin.cursor() as kill:
            kill.execute(f"KILL {connection.thread_id()}")
        with pytest.raises(pymysql.err.OperationalError):
            _drain(cursor, 1000, [])
        # The connection is gone, which PyMySQL's result does not note: unnoted, closing the
        # cursor and collecting the result would try to read the rest of the rows.
        cursor._result.unbuffered_active = False
    finally:
        admin.close()


def _drain(cursor: Any, size: int, into: list[Any]) -> None:
    while batch := cursor.fetchmany(size):
        into.extend(batch)


class _Wire:
    """The parts of a PyMySQL connection `_payload` reads: bytes as the server sent them."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._next_seq_id = 0
        self.closed = False

    def _read_bytes(self, count: int) -> bytes:
        taken, self.data = self.data[:count], self.data[count:]
        return taken

    def _force_close(self) -> None:
        self.closed = True


def _packet(number: int, body: bytes) -> bytes:
    return len(body).to_bytes(3, "little") + bytes([number]) + body


def test_a_payload_split_over_packets_is_joined_and_a_wrong_sequence_number_raises() -> None:
    whole = b"x" * (2**24 - 1)
    wire = _Wire(_packet(0, whole) + _packet(1, b"yz") + _packet(2, b"next"))
    assert _payload(wire) == whole + b"yz"
    assert _payload(wire) == b"next"
    assert wire._next_seq_id == 3
    wrong = _Wire(_packet(5, b"a"))
    with pytest.raises(pymysql.err.InternalError, match="got 5 expected 0"):
        _payload(wrong)
    assert wrong.closed
    shutdown = _Wire(_packet(0, b"a"))
    shutdown._next_seq_id = 4
    with pytest.raises(pymysql.err.OperationalError):
        _payload(shutdown)
