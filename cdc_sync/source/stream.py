"""Stream rows with server-side cursors and merge each child collection into its parents.

One query for the parents and one per child collection, all in the same key order. Streamed
reads (full reads, slices, wide incremental reads) run side by side, each on its own connection
(MySQL's unbuffered cursors allow one open result per connection, psycopg's stream one result);
bounded ones (a chunk of keys, a few changed rows: reads.py) are fetched whole one after the
other, each handing its connection back before the next. The merge walks them together, so
memory holds one parent's children, never a table.

This is the hot path of a full cycle (a million orders, three million order lines): rows stay
plain tuples (a SourceRow builds dicts only when composed), and the key of a row is computed
by a function chosen up front for the key's shape (one integer column is a plain index).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Collection, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from cdc_sync.core.deferred import Conversion, Deferred, Due, deferred_or_none
from cdc_sync.errors import SourceError
from cdc_sync.mapping.labels import key_string
from cdc_sync.source.connect import source_error
from cdc_sync.source.digests import COUNT_LABEL, DIGEST_LABEL, summary
from cdc_sync.source.driver import Deferral, driver_batches, driver_statement
from cdc_sync.source.keys import KeyKind, normalize

DEFAULT_BATCH = 1000

Row = Sequence[Any]
Key = Any
"""A key as Python compares it (see keys.normalize): one value, or a tuple for composite keys."""

_READ_FIX = (
    "check that the shop database is reachable and that the mapping still fits its schema "
    "(run `cdc-sync check`)"
)
_END: Any = object()


@dataclass(frozen=True, slots=True)
class RowShape:
    """The labels of a parent row and of each child collection's rows (one per stream), and
    the conversions still due on its values (core/deferred.py; None: all converted)."""

    labels: tuple[str, ...]
    children: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (collection, labels of its rows)
    deferred: Deferred | None = None


class SourceRow:
    """A parent row, its state key and its children, as the database gave them.

    Rows stay tuples: `values` and `children` (dicts keyed by label) are built only when asked
    for, so a row that turns out unchanged by its raw values (see `diff.source_fingerprint`)
    never pays for them. Values a full read left as the driver's bytes (`shape.deferred`)
    are converted the first time `raw` or `kids` is read; `read_raw` and `read_kids` are
    the row as read, for the compose worker, which converts them itself.
    """

    __slots__ = ("_finished", "digest", "key", "read_kids", "read_raw", "repeats", "shape")

    def __init__(self, key: str, raw: Row, kids: tuple[list[Row], ...], shape: RowShape,
                 repeats: int = 1, digest: str | None = None) -> None:
        self.key = key
        # The database's digest of the row and its children (source/digests.py), when it
        # computes them: the row's mark is made from it, never from the values.
        self.digest = digest
        self.read_raw = raw
        self.read_kids = kids  # each collection's rows, in shape.children order
        self.shape = shape
        # More than 1 when a query or join gave several rows one key: which row is right is
        # anybody's guess, so the record is rejected (not the resource stopped).
        self.repeats = repeats
        self._finished: tuple[Row, tuple[list[Row], ...]] | None = None

    @property
    def raw(self) -> Row:
        """The row's values, as the driver converts them."""
        if self.shape.deferred is None:
            return self.read_raw
        return self._converted()[0]

    @property
    def kids(self) -> tuple[list[Row], ...]:
        """Each child collection's rows, as the driver converts them."""
        if self.shape.deferred is None:
            return self.read_kids
        return self._converted()[1]

    def _converted(self) -> tuple[Row, tuple[list[Row], ...]]:
        if self._finished is None:
            assert self.shape.deferred is not None
            self._finished = self.shape.deferred.finish(self.read_raw, self.read_kids)
        return self._finished

    @property
    def values(self) -> dict[str, Any]:
        return dict(zip(self.shape.labels, self.raw))  # noqa: B905 - one select, same length

    @property
    def children(self) -> dict[str, list[dict[str, Any]]]:
        # zip stops before the parent key that child rows carry last (see query.child_select)
        return {
            name: [dict(zip(labels, row)) for row in rows]  # noqa: B905
            for (name, labels), rows in zip(self.shape.children, self.kids)  # noqa: B905
        }


@dataclass(frozen=True)
class Rows:
    """The rows of one statement, as tuples, with the label of each position."""

    labels: tuple[str, ...]
    rows: Iterator[Row]
    source: Generator[Any, None, None] | None = None  # closed to release the connection
    # The values that may stay the driver's bytes, and once the statement ran, which did.
    deferral: Deferral | None = None

    @property
    def deferred(self) -> tuple[Conversion, ...]:
        """The conversions due on the rows read so far (known once the first was read)."""
        return () if self.deferral is None else self.deferral.conversions

    def close(self) -> None:
        if self.source is not None:
            self.source.close()


def stream(engine: sa.Engine, stmt: sa.Select[Any], *, doing: str,
           batch: int = DEFAULT_BATCH, bounded: bool = False,
           deferrable: Collection[int] = ()) -> Rows:
    """Rows of `stmt`, fetched `batch` at a time, streamed (lazily).

    Fetched in this thread on purpose: a thread reading ahead let the database work while we
    compose, but it took the GIL each time the state DB's SQLite calls released it, and the
    cycle came out slower (measured: bench/README.md). On PostgreSQL, PyMySQL and mysqlclient
    every statement is read straight from the driver (`driver.py`), its parameters bound as
    SQLAlchemy binds them: one round trip, where SQLAlchemy's server-side cursor took DECLARE,
    FETCH 1, FETCH 999, FETCH 1000 and CLOSE, and SQLAlchemy's execution and Row objects cost
    more CPU than the rows of an incremental cycle's small reads. `bounded`: the statement
    reads at most a chunk of keys (and their children), so it is fetched whole at once (an
    incremental cycle reads pending and followed records by key, a few rows a statement).
    `deferrable`: positions whose values the caller never reads itself, which a driver that
    can leaves as its bytes (`Rows.deferred`, core/deferred.py).
    """
    labels = tuple(stmt.selected_columns.keys())
    statement = driver_statement(engine, stmt)
    deferral = Deferral(frozenset(deferrable)) if deferrable and statement is not None else None
    batches = (_fetch(engine, stmt, doing, batch, bounded) if statement is None
               else driver_batches(engine, stmt, statement, batch, lambda exc: source_error(
                   exc, doing, _READ_FIX, engine), bounded=bounded, deferral=deferral))
    return Rows(labels, itertools.chain.from_iterable(batches), batches, deferral)


def _fetch(engine: sa.Engine, stmt: sa.Select[Any], doing: str, batch: int,
           bounded: bool = False) -> Generator[Sequence[Row], None, None]:
    if bounded:  # fetched whole and the connection handed back first, as driver_batches does
        yield from _fetched_whole(engine, stmt, doing, batch)
        return
    abandoned = False
    try:
        with engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(stmt)
            try:
                # Plain tuples, as the driver's path gives them: source fingerprints are
                # built from their repr (a Row's is slower, and shortens long values).
                for part in result.partitions(batch):
                    yield [tuple(row) for row in part]
            except GeneratorExit:
                abandoned = True
                raise
    except sa.exc.SQLAlchemyError as exc:
        if abandoned:
            # The caller stopped reading (another stream of the cycle failed, or a stop): a
            # dead connection that fails to close now is no news, and raising here would only
            # print "Exception ignored" noise.
            return
        raise source_error(exc, doing, _READ_FIX, engine) from None


def _fetched_whole(engine: sa.Engine, stmt: sa.Select[Any], doing: str,
                   batch: int) -> list[Sequence[Row]]:
    try:
        with engine.connect() as conn:
            result = conn.execute(stmt)
            return [[tuple(row) for row in part] for part in result.partitions(batch)]
    except sa.exc.SQLAlchemyError as exc:
        raise source_error(exc, doing, _READ_FIX, engine) from None


def key_reader(positions: Sequence[int], kinds: Sequence[KeyKind]) -> Callable[[Row], Key]:
    """The function giving a row's comparable key from the values at `positions`."""
    if len(positions) == 1:
        position = positions[0]
        if kinds[0] is KeyKind.NUMBER:
            return operator.itemgetter(position)
        return lambda row: _text(row[position])
    return lambda row: normalize([row[p] for p in positions], kinds)


def _text(value: Any) -> str:
    return value if type(value) is str else normalize([value], (KeyKind.TEXT,))[0]


class _ChildCursor:
    """A child stream grouped by parent key, handing out each parent's rows in turn."""

    def __init__(self, name: str, rows: Rows, width: int, kinds: Sequence[KeyKind], *,
                 hashed: bool = False) -> None:
        self.name = name
        # child_select puts the parent key last, so zip(values, row) stops before it
        self.values = rows.labels[: len(rows.labels) - width]
        key_of = key_reader(range(len(self.values), len(rows.labels)), kinds)
        # Digests (digests.py): each row's number (an aggregate row's md5) right after its
        # values, kept out of the labels compose sees; or, read digest-only, one row per
        # parent holding its count and sum.
        self.number_at: int | None = None
        self.summed = COUNT_LABEL in self.values
        self.hashed = hashed  # an aggregate's rows: one md5 per parent, taken as it is
        if DIGEST_LABEL in self.values:
            self.number_at = self.values.index(DIGEST_LABEL)
            self.values = self.values[: self.number_at]
        self.groups = itertools.groupby(rows.rows, key_of)
        self.key: Key = _END
        self.group: Iterator[Row] = iter(())
        self._next_group()
        # Its first row is read: which values the driver left as bytes is known.
        self.due = Due(len(rows.labels), rows.deferred)

    def take(self, key: Key) -> list[Row]:
        """The rows of the parent with this key (orphans of earlier keys are skipped)."""
        try:
            while self.key is not _END:
                if self.key == key:
                    taken = list(self.group)
                    self._next_group()
                    return taken
                if key < self.key:
                    return []
                self._next_group()
        except TypeError:
            raise _incomparable(f"child {self.name!r}", key, self.key) from None
        return []

    def summary(self, rows: list[Row]) -> str:
        """These rows' part of their parent's digest text (see digests.summary)."""
        if self.summed:
            return summary(rows[0][0], rows[0][1]) if rows else summary(0, 0)
        at = self.number_at
        if at is None:
            raise ValueError(f"child {self.name!r} was read without digests")
        if self.hashed:
            return ",".join([row[at] for row in rows])
        return summary(len(rows), sum([row[at] for row in rows]))

    def _next_group(self) -> None:
        key, self.group = next(self.groups, (_END, self.group))
        # Groups of one key must come in increasing order; a key seen again is out of order.
        if key is not _END and self.key is not _END and not self.key < key:
            raise _out_of_order(f"child {self.name!r}")
        self.key = key


def _incomparable(what: str, a: Key, b: Key) -> SourceError:
    return SourceError(
        f"keys of {what} cannot be compared with its parent's ({a!r} vs {b!r}); fix: give "
        "parent_key columns of the same type as the key columns (cast one side in a query:)"
    )


def _out_of_order(what: str) -> SourceError:
    return SourceError(
        f"rows of {what} did not arrive in key order; fix: make the key and parent_key columns "
        "the same type, or use a query: source that casts them alike"
    )


def merge(parents: Rows, key_labels: Sequence[str], kinds: tuple[KeyKind, ...],
          children: Mapping[str, Rows], *, resource: str,
          hashed: Collection[str] = ()) -> Iterator[SourceRow]:
    """Each parent with its children; parents must arrive in strictly increasing key order.
    `hashed`: the children that are aggregates (digests: an md5 per grouped row)."""
    try:
        cursors = [_ChildCursor(name, rows, len(kinds), kinds, hashed=name in hashed)
                   for name, rows in children.items()]
        yield from _merged(parents, key_labels, kinds, cursors, resource)
    finally:
        # Release every connection now, even when the caller stopped early.
        for rows in (parents, *children.values()):
            rows.close()


def _merged(parents: Rows, key_labels: Sequence[str], kinds: tuple[KeyKind, ...],
            cursors: list[_ChildCursor], resource: str) -> Iterator[SourceRow]:
    labels = parents.labels
    # A row's digest comes last (query.rows_select): out of the labels compose zips.
    md5_at = labels.index(DIGEST_LABEL) if DIGEST_LABEL in labels else None
    if md5_at is not None:
        labels = labels[:md5_at]
    rows = iter(parents.rows)
    first = next(rows, _END)
    if first is _END:
        return
    # Read after the first row: which values the driver left as bytes is known by then.
    shape = RowShape(labels, tuple((c.name, c.values) for c in cursors), deferred_or_none(
        Due(len(parents.labels), parents.deferred), [c.due for c in cursors]))
    positions = [labels.index(label) for label in key_labels]
    key_of = key_reader(positions, kinds)
    text_of = _key_text(positions)
    previous: Key = _END
    held: SourceRow | None = None
    for row in itertools.chain((first,), rows):
        key = key_of(row)
        if previous is not _END:
            try:
                ordered = previous < key
            except TypeError:
                raise _incomparable(resource, previous, key) from None
            if held is not None and previous == key:
                held.repeats += 1
                continue
            if not ordered:
                raise _out_of_order(resource)
        previous = key
        if held is not None:
            yield held
        kids = tuple([cursor.take(key) for cursor in cursors])
        digest = None if md5_at is None else _digest(row[md5_at], cursors, kids)
        held = SourceRow(text_of(row, key), row, kids, shape, digest=digest)
    if held is not None:
        yield held


def _digest(md5: str, cursors: list[_ChildCursor], kids: tuple[list[Row], ...]) -> str:
    """A parent's digest text: its own md5, then each child collection's count:sum."""
    if not cursors:
        return md5
    return "|".join([md5, *(c.summary(rows) for c, rows in zip(cursors, kids))])  # noqa: B905


def _key_text(positions: Sequence[int]) -> Callable[[Row, Key], str]:
    """The state key (labels.key_string) of a row whose comparable key is already known."""
    if len(positions) == 1:
        return lambda _row, key: str(key)  # key_string of one value: its text, as normalized
    return lambda row, _key: key_string([row[p] for p in positions])

