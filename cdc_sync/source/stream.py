"""Stream rows with server-side cursors and merge each child collection into its parents.

One query for the parents and one per child collection, each on its own connection (MySQL's
unbuffered cursors allow one open result per connection), all in the same key order. The merge
walks them together, so memory holds one parent's children, never a table.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from cdc_sync.errors import SourceError
from cdc_sync.mapping.labels import key_string
from cdc_sync.source.connect import source_error
from cdc_sync.source.keys import KeyKind, KeyTuple, normalize
from cdc_sync.source.query import PARENT_KEY_PREFIX

DEFAULT_BATCH = 1000

Row = Mapping[Any, Any]

_READ_FIX = (
    "check that the shop database is reachable and that the mapping still fits its schema "
    "(run `cdc-sync check`)"
)


@dataclass(frozen=True)
class SourceRow:
    """A parent row, its state key, and its children by collection name."""

    key: str
    values: dict[str, Any]
    children: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def stream(engine: sa.Engine, stmt: sa.Executable, *, doing: str,
           batch: int = DEFAULT_BATCH) -> Iterator[Row]:
    """Rows of `stmt`, fetched `batch` at a time from a server-side cursor."""
    try:
        with engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(stmt)
            yield from result.mappings()
    except sa.exc.SQLAlchemyError as exc:
        raise source_error(exc, doing, _READ_FIX, engine) from None


@dataclass
class _ChildCursor:
    """A child stream, read ahead by one row, handing out each parent's rows in turn."""

    name: str
    rows: Iterator[Row]
    kinds: tuple[KeyKind, ...]
    _pending: tuple[KeyTuple, Row] | None = None
    _last: KeyTuple | None = None
    _done: bool = False

    def take(self, key: KeyTuple) -> list[dict[str, Any]]:
        taken: list[dict[str, Any]] = []
        while True:
            head = self._peek()
            if head is None or _less(key, head[0], self.name):
                return taken
            if head[0] == key:
                taken.append(_child_values(head[1]))
            self._pending = None  # a row of an earlier parent: an orphan, skipped

    def _peek(self) -> tuple[KeyTuple, Row] | None:
        if self._pending is None and not self._done:
            row = next(self.rows, None)
            if row is None:
                self._done = True
                return None
            width = len(self.kinds)
            key = normalize([row[f"{PARENT_KEY_PREFIX}{i}"] for i in range(width)], self.kinds)
            if self._last is not None and _less(key, self._last, self.name):
                raise _out_of_order(f"child {self.name!r}")
            self._last = key
            self._pending = (key, row)
        return self._pending


def _child_values(row: Row) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith(PARENT_KEY_PREFIX)}


def _less(a: KeyTuple, b: KeyTuple, what: str) -> bool:
    try:
        return a < b
    except TypeError:
        raise SourceError(
            f"keys of {what} cannot be compared with its parent's ({a!r} vs {b!r}); fix: give "
            "parent_key columns of the same type as the key columns (cast one side in a query:)"
        ) from None


def _out_of_order(what: str) -> SourceError:
    return SourceError(
        f"rows of {what} did not arrive in key order; fix: make the key and parent_key columns "
        "the same type, or use a query: source that casts them alike"
    )


def merge(parents: Iterator[Row], key_labels: Sequence[str], kinds: tuple[KeyKind, ...],
          children: Mapping[str, Iterator[Row]], *, resource: str) -> Iterator[SourceRow]:
    """Each parent with its children; parents must arrive in strictly increasing key order."""
    cursors = [_ChildCursor(name, rows, kinds) for name, rows in children.items()]
    try:
        yield from _merged(parents, key_labels, kinds, cursors, resource)
    finally:
        # Release every connection now, even when the caller stopped early.
        for rows in (parents, *children.values()):
            close = getattr(rows, "close", None)
            if close is not None:
                close()


def _merged(parents: Iterator[Row], key_labels: Sequence[str], kinds: tuple[KeyKind, ...],
            cursors: list[_ChildCursor], resource: str) -> Iterator[SourceRow]:
    previous: KeyTuple | None = None
    for row in parents:
        raw = [row[label] for label in key_labels]
        key = normalize(raw, kinds)
        if previous is not None and not _less(previous, key, resource):
            if previous == key:
                raise SourceError(
                    f"{resource}: key {key_string(raw)!r} appears on more than one row; fix: set "
                    "key: to columns that identify one row, or make each join match at most one row"
                )
            raise _out_of_order(resource)
        previous = key
        yield SourceRow(key_string(raw), dict(row), {c.name: c.take(key) for c in cursors})
