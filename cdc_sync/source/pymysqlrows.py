"""PyMySQL's unbuffered rows, taken apart by one function: the same tuples, a quarter cheaper.

A first push of a MariaDB shop through PyMySQL is bound by the cycle's own process, and a
quarter of that process is PyMySQL reading rows: for every column it calls four small methods
of its packet object (the length byte, the bytes, a bounds check, the position). Read here,
a row of the bench shop's orders (12 columns) costs 5.1 us instead of 6.6, one of its order
lines (4 columns) 2.3 instead of 2.9, the packets' reading included (thread CPU, 150k and
449k rows, 3 runs each, load 5). `RowsCursor.fetchmany` reads the same packets
through PyMySQL (`Connection._read_packet`: framing, errors, sequence numbers), then walks
each row's bytes in one loop with the length prefix inlined, and decodes and converts each
value with the very (encoding, converter) pairs PyMySQL chose for the result's columns. So
each value is the one PyMySQL's `MySQLResult._read_row_from_packet` gives; any row whose
bytes do not end where its columns do (which that method would raise on, or cut short) is
handed to that method itself, as is any result this cursor does not recognise.
"""

from __future__ import annotations

from typing import Any

from pymysql.cursors import SSCursor

_NULL = 251  # a length byte for SQL NULL
_TWO, _THREE, _EIGHT = 252, 253, 254  # the length follows in 2, 3 or 8 bytes


class RowsCursor(SSCursor):  # type: ignore[misc]  # PyMySQL ships no types
    """PyMySQL's unbuffered cursor, with `fetchmany` parsing rows in one loop."""

    def fetchmany(self, size: int | None = None) -> Any:
        self._check_executed()
        result = self._result
        converters = getattr(result, "converters", None)
        if not getattr(result, "unbuffered_active", False) or converters is None:
            return super().fetchmany(size)
        rows: list[tuple[Any, ...]] = []
        read_packet = result.connection._read_packet
        for _ in range(self.arraysize if size is None else size):
            packet = read_packet()
            if result._check_packet_is_eof(packet):
                # What PyMySQL's own unbuffered read does at the end of the rows.
                result.unbuffered_active = False
                result.connection = None
                result.rows = None
                self.warning_count = result.warning_count
                break
            row = parse_row(packet._data, packet._position, converters)
            rows.append(row if row is not None else result._read_row_from_packet(packet))
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
