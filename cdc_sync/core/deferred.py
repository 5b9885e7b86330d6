"""Values a driver left as its bytes, converted where the record is composed (pure).

A first push of a MariaDB shop is bound by the cycle's own process. That process looks only
at a row's key, its children's parent keys and the database's digests; the Decimals and
datetimes PyMySQL made of the other values only went on to the compose worker, made and then
pickled for it on the busier side (2.3 us an order). So a full read for a worker leaves those
values as the bytes the server sent (`pymysqlrows.RowsCursor.defer`), with the driver's own
conversion of each column beside them (`Deferred`), and whoever reads the values first
converts them: the worker, before it composes and fingerprints (cycle/compose_worker.py), or
`source.stream.SourceRow` when a row is composed or hashed in the cycle's own thread. A
conversion is exactly the one the driver would have applied (PyMySQL's `(encoding,
converter)` pair of that column: decode the bytes if it has an encoding, then call the
converter if it has one; SQL NULL stays None), so every value, record and fingerprint is
the one the driver's own read gives.

`Deferred.finish` is generated code (core/codegen.py), one straight-line tuple per row
shape, compiled once per process: a loop over the conversions cost twice as much (an order
with every value deferred: 3.3 against 1.9 us). A row of another length than its stream's
(PyMySQL's own parser may stop short of a row it cannot read) is converted by that loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cdc_sync.core.codegen import Code

Row = Sequence[Any]
Finished = tuple[tuple[Any, ...], tuple[list[Row], ...]]

Conversion = tuple[int, str | None, Callable[[Any], Any] | None]
"""A column left as bytes: its position in the row, the driver's encoding and converter.
The converter is pickled by reference (a function or class of an importable module)."""

Finish = Callable[[Row, Sequence[Sequence[Row]]], Finished]

_KEPT = 256
_FINISHERS: dict[tuple[Due, tuple[Due, ...]], Finish] = {}
"""Each shape's generated `finish`, by what its `Deferred` holds (equal after pickling: a
worker unpickles a new one with every chunk, and compiles it once)."""


@dataclass(frozen=True, slots=True)
class Due:
    """The conversions due on the rows of one stream, and how many values such a row has."""

    width: int
    conversions: tuple[Conversion, ...]


class Deferred:
    """The conversions still due on the rows of one read: the parent row's, and each child
    collection's (in the row's `kids` order; none for a collection converted as read).
    Pickles as what it holds; equal when that is."""

    __slots__ = ("_finish", "_hash", "children", "parent")

    def __init__(self, parent: Due, children: tuple[Due, ...]) -> None:
        self.parent = parent
        self.children = children
        self._finish: Finish | None = None
        # Part of a row shape's hash, which a composer looks its code up by for every row.
        self._hash = hash((parent, children))

    def __reduce__(self) -> tuple[Any, ...]:
        return Deferred, (self.parent, self.children)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Deferred) and self.parent == other.parent
                and self.children == other.children)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"Deferred(parent={self.parent!r}, children={self.children!r})"

    def finish(self, raw: Row, kids: Sequence[Sequence[Row]]) -> Finished:
        """The row and its child rows with every deferred value converted."""
        finish = self._finish
        if finish is None:
            finish = self._finish = self.finisher()
        return finish(raw, kids)

    def finisher(self) -> Finish:
        """`finish` as one function (generated for these streams, compiled once per process)."""
        held = (self.parent, self.children)
        finish = _FINISHERS.get(held)
        if finish is None:
            if len(_FINISHERS) >= _KEPT:
                _FINISHERS.clear()
            finish = _FINISHERS[held] = _generated(self)
        return finish

    def finish_each(self, raw: Row, kids: Sequence[Sequence[Row]]) -> Finished:
        """What `finish` gives, one conversion at a time (any row length)."""
        return _converted(raw, self.parent.conversions), tuple([
            [_converted(row, due.conversions) for row in rows]
            for rows, due in zip(kids, self.children, strict=True)
        ])


def deferred_or_none(parent: Due, children: Sequence[Due]) -> Deferred | None:
    """A `Deferred` for these streams; None when no conversion is due."""
    if not parent.conversions and not any(due.conversions for due in children):
        return None
    return Deferred(parent, tuple(children))


def _converted(row: Row, due: tuple[Conversion, ...]) -> tuple[Any, ...]:
    values = list(row)
    end = len(values)
    for at, encoding, converter in due:
        if at >= end:
            continue  # not in this row: nothing was read there
        value = values[at]
        if value is None:  # SQL NULL: the driver converts nothing
            continue
        if encoding is not None:
            value = value.decode(encoding)
        if converter is not None:
            value = converter(value)
        values[at] = value
    return tuple(values)


def _generated(deferred: Deferred) -> Callable[[Row, Sequence[Sequence[Row]]], Finished]:
    code = Code("finish deferred values")
    _row_function(code, "parent", deferred.parent)
    kids = []
    for number, due in enumerate(deferred.children):
        if due.conversions:
            _row_function(code, f"child{number}", due)
            kids.append(f"[child{number}(row) for row in kids[{number}]]")
        else:
            kids.append(f"list(kids[{number}])")
    each = code.ref(deferred.finish_each, "finish_each")
    code.line(0, "def finish(raw, kids):")
    code.line(1, "try:")
    code.line(2, f"return parent(raw), ({''.join(kid + ', ' for kid in kids)})")
    code.line(1, "except IndexError:  # a row shorter than its stream's: each value where it is")
    code.line(2, f"return {each}(raw, kids)")
    return code.compile("finish")


def _row_function(code: Code, name: str, due: Due) -> None:
    """`name(row)`: the row as a tuple, each due value converted (raises IndexError for a
    row shorter than `due.width`; a longer one never comes from one statement)."""
    conversions = {at: (encoding, converter) for at, encoding, converter in due.conversions}
    values = []
    for at in range(due.width):
        if at not in conversions:
            values.append(f"row[{at}]")
            continue
        encoding, converter = conversions[at]
        value = "value" if encoding is None else f"value.decode({code.ref(encoding, 'encoding')})"
        if converter is not None:
            value = f"{code.ref(converter, 'convert')}({value})"
        values.append(f"None if (value := row[{at}]) is None else {value}")
    code.line(0, f"def {name}(row):")
    code.line(1, f"return ({''.join(value + ', ' for value in values)})")
