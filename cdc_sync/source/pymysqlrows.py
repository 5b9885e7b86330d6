"""PyMySQL's unbuffered rows, read and taken apart in one loop: the same tuples, a third cheaper.

A first push of a MariaDB shop through PyMySQL is bound by the cycle's own process, and a
quarter of that process is PyMySQL reading rows: per row it makes a packet object (a method
call for the header, one for the bytes, the checks), then calls four small methods of it per
column (the length byte, the bytes, a bounds check, the position). `RowsCursor.fetchmany`
reads each packet's bytes with PyMySQL's own socket reads (`Connection._read_bytes`: EINTR
retried, a lost connection raised as PyMySQL raises it) and its checks (`_payload`: the
sequence number, a payload split over packets joined, the server's error packets), then
walks the row's bytes in one loop with the length prefix inlined, and decodes and converts
each value with the very (encoding, converter) pairs PyMySQL chose for the result's columns.
So each value is the one PyMySQL's `MySQLResult._read_row_from_packet` gives; any row whose
bytes do not end where its columns do (which that method would raise on, or cut short) is
handed to that method itself, as is any result this cursor does not recognise. Thread CPU of
the bench shop's full reads (150k orders of 12 columns, 449k order lines of 4; 3 runs each,
load 3-5): an order's row 7.5 -> 4.9 us, an order line's 3.2 -> 2.0 us.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymysql import err
from pymysql.connections import Connection, MySQLResult
from pymysql.constants import CR
from pymysql.cursors import SSCursor
from pymysql.protocol import MysqlPacket

from cdc_sync.core.deferred import Conversion

CHECKED_VERSIONS = frozenset({(1, 2)})
"""PyMySQL's minor versions this module's use of its private reads was checked against
(tests/test_pymysqlrows.py). It reads through `Connection._read_bytes`, `_next_seq_id`,
`MySQLResult.converters` and others that PyMySQL may change in any release, so any other
version reads through PyMySQL's own `SSCursor` (slower, never wrong) until it is checked."""

_PRIVATE_READS = (
    (Connection, "_read_bytes"), (Connection, "_force_close"),
    (MySQLResult, "_check_packet_is_eof"), (MySQLResult, "_read_row_from_packet"),
    (MysqlPacket, "raise_for_error"),
)

_WHOLE = 2**24 - 1  # a packet this long continues in the next one (PyMySQL's MAX_PACKET_LEN)
_EOF, _ERROR = 0xFE, 0xFF  # the first byte of an end-of-rows packet, of an error packet

_CHEAP = frozenset({int, float})  # converters left to run as rows are read (see `defer`)

_NULL = 251  # a length byte for SQL NULL
_TWO, _THREE, _EIGHT = 252, 253, 254  # the length follows in 2, 3 or 8 bytes


def unbuffered_cursor(version: tuple[Any, ...]) -> Any:
    """The unbuffered cursor for PyMySQL `version` (`pymysql.VERSION`): `RowsCursor` where
    it was checked and PyMySQL still has what it reads, else PyMySQL's own."""
    if tuple(version[:2]) in CHECKED_VERSIONS and all(
            callable(getattr(owner, name, None)) for owner, name in _PRIVATE_READS):
        return RowsCursor
    return SSCursor


class RowsCursor(SSCursor):  # type: ignore[misc]  # PyMySQL ships no types
    """PyMySQL's unbuffered cursor, with `fetchmany` parsing rows in one loop."""

    def defer(self, positions: Iterable[int]) -> tuple[Conversion, ...]:
        """Leave the values at `positions` of the rows still to read that PyMySQL converts to
        an object (a Decimal, datetime, date, timedelta) as the bytes the server sent
        (core/deferred.py); the conversions PyMySQL would have applied to them, to apply
        later. Making and pickling such objects is what costs (an order's DECIMAL and DATETIME:
        2.3 us of the cycle's process); a text or a number costs about as much to convert
        later as now, so those are converted as read. Both readers of a row (the loop below
        and PyMySQL's own parser, which takes the rows the loop leaves to it) read the
        result's converters, so both leave them alike."""
        converters = getattr(self._result, "converters", None)
        if not getattr(self._result, "unbuffered_active", False) or converters is None:
            return ()  # not a result this cursor reads (nor one PyMySQL converts)
        deferred: list[Conversion] = []
        for at in sorted(set(positions)):
            encoding, converter = converters[at]
            if converter is None or converter in _CHEAP:
                continue  # text, numbers: as cheap to convert and pickle now as later
            deferred.append((at, encoding, converter))
            converters[at] = (None, None)
        return tuple(deferred)

    def fetchmany(self, size: int | None = None) -> Any:
        self._check_executed()
        result = self._result
        converters = getattr(result, "converters", None)
        if not getattr(result, "unbuffered_active", False) or converters is None:
            return super().fetchmany(size)
        rows: list[tuple[Any, ...]] = []
        connection = result.connection
        if connection._current_timeout != connection._read_timeout:  # as _read_packet does
            connection._sock.settimeout(connection._read_timeout)
            connection._current_timeout = connection._read_timeout
        for _ in range(self.arraysize if size is None else size):
            data = _payload(connection)
            if data[0] == _EOF and len(data) < 9:
                # What PyMySQL's own unbuffered read does at the end of the rows.
                result._check_packet_is_eof(MysqlPacket(data, connection.encoding))
                result.unbuffered_active = False
                result.connection = None
                result.rows = None
                self.warning_count = result.warning_count
                break
            if data[0] == _ERROR:  # the server's error mid-result, raised as PyMySQL raises it
                result.unbuffered_active = False
                MysqlPacket(data, connection.encoding).raise_for_error()
            row = parse_row(data, 0, converters)
            if row is None:
                row = result._read_row_from_packet(MysqlPacket(data, connection.encoding))
            rows.append(row)
        if not rows:
            return ()  # as SSCursor.fetchmany: () at the end
        self.rownumber += len(rows)
        result.affected_rows = 1
        result.rows = (rows[-1],)
        return rows


def parse_row(data: bytes, at: int, converters: list[tuple[str | None, Any]]) -> Any:
    """The row in `data` from `at`, as PyMySQL reads it; None when its bytes do not fit its
    columns (then PyMySQL's own parser decides: it raises, or stops at the end of the data)."""
    row: list[Any] = []
    end = len(data)
    for encoding, converter in converters:
        if at >= end:
            return None  # fewer values than columns: PyMySQL's own answer
        length = data[at]
        at += 1
        if length >= _NULL:
            if length == _TWO:
                length = int.from_bytes(data[at:at + 2], "little")
                at += 2
            elif length == _THREE:
                length = int.from_bytes(data[at:at + 3], "little")
                at += 3
            elif length == _EIGHT:
                length = int.from_bytes(data[at:at + 8], "little")
                at += 8
            else:  # 251 is NULL; PyMySQL reads 255 as NULL too
                row.append(None)
                continue
        if at + length > end:
            return None  # cut short (or its length was): PyMySQL raises on it
        value: Any = data[at:at + length]
        at += length
        if encoding is not None:
            value = value.decode(encoding)
        if converter is not None:
            value = converter(value)
        row.append(value)
    return tuple(row)


def _payload(connection: Any) -> bytes:
    """The next packet's bytes, read as `Connection._read_packet` reads them (its reads, its
    checks of the sequence number, a payload split over packets joined), without making a
    packet object of them."""
    read = connection._read_bytes  # retries EINTR; a lost connection raises OperationalError
    parts: list[bytes] = []
    while True:
        header = read(4)
        length = header[0] | header[1] << 8 | header[2] << 16
        number = header[3]
        if number != connection._next_seq_id:
            connection._force_close()
            if number == 0:  # MariaDB sends an error packet numbered 0 when it shuts down
                raise err.OperationalError(
                    CR.CR_SERVER_LOST, "Lost connection to MySQL server during query")
            raise err.InternalError(
                f"Packet sequence number wrong - got {number} expected "
                f"{connection._next_seq_id}")
        connection._next_seq_id = (number + 1) % 256
        data = read(length)
        if length < _WHOLE:
            return b"".join([*parts, data]) if parts else data
        parts.append(data)
