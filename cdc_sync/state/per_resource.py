"""Per-resource questions and actions on state: counts, live and pending keys, samples,
forcing a resync, retrying and explaining rejections."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from cdc_sync.state import statements
from cdc_sync.state.access import StateAccess, utc_now
from cdc_sync.state.columns import NUMBER_HIGHEST, NUMBER_LOWEST, STATUS_OF, state_row
from cdc_sync.state.rows import StateRow, Status
from cdc_sync.state.tables import sync_state

_c = sync_state.c
_PENDING = _c.status == sa.literal_column("'pending'")  # a literal, for the partial index
_LIVE = _c.status != Status.GONE.value  # what the shop had at the last look
_LIVE_STATUSES = [status.value for status in Status if status is not Status.GONE]
LIVE_NUMBERS = " UNION ALL ".join(
    "SELECT key_number FROM sync_state WHERE resource = ? AND status = "
    f"'{status}' AND key_number >= ? AND key_number <= ?" for status in _LIVE_STATUSES
) + " ORDER BY 1 LIMIT ?"
"""SQLite: a page of live key numbers, per live status a range of
ix_sync_state_resource_status (resource, status, key_number), merged in order (its merge of
a compound SELECT: nothing sorted). Plain SQL, as statements.py."""
LIVE_NUMBERS_PG = " UNION ALL ".join(
    f"SELECT key_number FROM (SELECT key_number FROM sync_state WHERE resource = %s AND "
    f"status = '{status}' AND key_number >= %s AND key_number <= %s ORDER BY key_number "
    f"LIMIT %s) AS {status}" for status in _LIVE_STATUSES
) + " ORDER BY 1 LIMIT %s"
"""PostgreSQL: the same, each status's range limited to a page (then a Merge Append of three
index-only scans); without it PostgreSQL sorted each status's whole remaining range (a
parallel scan, 60-400 ms a page at 1M orders)."""
LIVE_UNNUMBERED = (
    "SELECT key FROM sync_state WHERE resource = ? AND status IN ("
    + ", ".join(f"'{status}'" for status in _LIVE_STATUSES)
    + ") AND key_number IS NULL AND +key > ? ORDER BY +key LIMIT ?"
)
"""Live keys without a number, after one. SQLite's `+key` keeps the primary key (resource,
key) out of the plan: offered `key > ?` or ORDER BY key, it walked every row of the resource
(1 s at 1M orders) instead of the few without a number; PostgreSQL gets plain `key`."""
# sample_live_keys on SQLite draws this many rowids per key wanted: enough when the resource
# is more than 1/20 of the table; a smaller one is sorted at random whole (it is small).
_ROWIDS_PER_SAMPLE = 20
# ... unless the caller says the resource holds at most this many times the sample: then all
# its live keys are listed (an index range, a few thousand rows at most).
_WHOLE_SAMPLE = 10


@dataclass(frozen=True)
class Settlement:
    """A resource's rows in state at a glance (`PerResourceState.settlement`)."""

    rows: int
    unsettled: int  # pending (or any status but synced, rejected, gone), forced, a recheck due
    last_write: str | None  # the latest updated_at, as text (None: no row)


class PerResourceState(StateAccess):
    """What state holds for a whole resource, and the changes made to all its rows at once."""

    def count_by_status(self, resource: str) -> dict[Status, int]:
        """How many rows of `resource` are in each status (every status present, maybe 0)."""
        stmt = (
            sa.select(_c.status, sa.func.count())
            .where(_c.resource == resource)
            .group_by(_c.status)
        )
        counts = dict.fromkeys(Status, 0)
        for status, count in self._fetch(f"count {resource} by status", stmt):
            counts[STATUS_OF[status]] = count
        return counts

    def settlement(self, resource: str) -> Settlement:
        """How many rows of `resource` state holds, how many still need an action (pending,
        forced, a recheck to come), and when one was last written: one query. A rejected row
        needs none: it waits until its record changes or `cdc-sync retry` makes it pending
        (core/diff.classify), so a full read would leave it as it is."""
        settled = [Status.SYNCED.value, Status.REJECTED.value, Status.GONE.value]
        unsettled = sa.or_(_c.status.not_in(settled),
                           _c.forced.is_(True), _c.recheck_after.is_not(None))
        stmt = sa.select(sa.func.count(),
                         sa.func.coalesce(sa.func.sum(sa.case((unsettled, 1), else_=0)), 0),
                         sa.func.max(_c.updated_at)).where(_c.resource == resource)
        rows = self._fetch(f"summarise {resource}", stmt)
        count, pending, written = rows[0]
        return Settlement(int(count), int(pending), None if written is None else str(written))

    def live_count(self, resource: str) -> int:
        """Rows of `resource` not gone: what the shop had at the last look."""
        stmt = sa.select(sa.func.count()).where(_c.resource == resource, _LIVE)
        return self._scalar_int(f"count live {resource}", stmt)

    def iter_live_keys(self, resource: str, chunk: int = 1000, *,
                       after: str | None = None) -> Iterator[list[str]]:
        """Keys of `resource` not gone, in key order (of the state's text keys; `after`: those
        after this one), `chunk` at a time (keyset pagination)."""
        return self._iter_keys(resource, _LIVE, chunk, after=after)

    def iter_live_numbers(self, resource: str, chunk: int = 1000, *, after: int | None = None,
                          upto: int | None = None) -> Iterator[list[int]]:
        """The key numbers (columns.key_number) of `resource`'s live rows with `after < number
        <= upto` (None: open), in numeric order, `chunk` at a time: an index-only range on
        ix_sync_state_resource_status, every page on one connection. Rows without a number
        are not among them (`iter_live_keys_unnumbered`)."""
        low = NUMBER_LOWEST if after is None else max(after + 1, NUMBER_LOWEST)
        high = NUMBER_HIGHEST if upto is None else min(upto, NUMBER_HIGHEST)
        if low > high:
            return
        sqlite_db = self._dialect == "sqlite"
        sql = LIVE_NUMBERS if sqlite_db else LIVE_NUMBERS_PG
        with self._errors(f"list {resource} keys"), self._engine.connect() as conn:
            while True:
                arm = (resource, low, high) if sqlite_db else (resource, low, high, chunk)
                params = arm * len(_LIVE_STATUSES) + (chunk,)
                numbers = [n for (n,) in conn.exec_driver_sql(sql, params).fetchall()]
                if numbers:
                    yield numbers
                if len(numbers) < chunk or numbers[-1] >= high:
                    return
                low = numbers[-1] + 1

    def iter_live_keys_unnumbered(self, resource: str, chunk: int = 1000) -> Iterator[list[str]]:
        """Keys of `resource`'s live rows that have no key number (no integer's text), in key
        order, `chunk` at a time: the NULL end of ix_sync_state_resource_status per status."""
        sql = LIVE_UNNUMBERED
        if self._dialect != "sqlite":
            sql = sql.replace("+key", "key").replace("?", "%s")
        last = ""
        with self._errors(f"list {resource} keys"), self._engine.connect() as conn:
            while True:
                keys = [key for (key,) in conn.exec_driver_sql(
                    sql, (resource, last, chunk)).fetchall()]
                if keys:
                    yield keys
                if len(keys) < chunk:
                    return
                last = keys[-1]

    def iter_pending_keys(
        self, resource: str, chunk: int = 1000, *, untouched_since: datetime | None = None
    ) -> Iterator[list[str]]:
        """Keys of `resource` waiting to be sent again (and not written since `untouched_since`,
        when given), in key order, `chunk` at a time."""
        which = _PENDING
        if untouched_since is not None:
            which = sa.and_(which, _c.updated_at < untouched_since)
        return self._iter_keys(resource, which, chunk)

    def iter_due_rechecks(
        self, resource: str, chunk: int = 1000, *, due_by: datetime
    ) -> Iterator[list[str]]:
        """Keys of `resource` whose recheck (see Outcome.recheck_after) is due by `due_by`, in
        key order, `chunk` at a time."""
        which = sa.and_(_c.recheck_after.is_not(None), _c.recheck_after <= due_by)
        return self._iter_keys(resource, which, chunk)

    def sample_live_keys(self, resource: str, size: int, *, live: int | None = None) -> list[str]:
        """Up to `size` keys of `resource` not gone, chosen at random. `live`, when the caller
        knows it, is how many there are: a resource of at most `_WHOLE_SAMPLE` times `size`
        (categories, read whole every cycle) is read whole by its index and sampled here,
        instead of probing random rows of every resource or sorting it at random."""
        if live is not None and live <= size * _WHOLE_SAMPLE:
            keys = [row[0] for row in self._fetch(
                f"list live {resource} keys",
                sa.select(_c.key).where(_c.resource == resource, _LIVE))]
            return random.sample(keys, size) if len(keys) > size else keys
        if self._dialect == "sqlite":
            sampled = self._sample_by_rowid(resource, size)
            if sampled is not None:
                return sampled
        stmt = (
            sa.select(_c.key)
            .where(_c.resource == resource, _LIVE)
            .order_by(sa.func.random())
            .limit(size)
        )
        return [row[0] for row in self._fetch(f"sample live {resource} keys", stmt)]

    def _sample_by_rowid(self, resource: str, size: int) -> list[str] | None:
        """SQLite: the rows at random rowids, instead of sorting every live row at random
        (0.5 s at 1M orders, every full cycle). Each row is as likely to be drawn as any
        other, so the keys found are a uniform sample. None if too few were found."""
        action = f"sample live {resource} keys"
        with self._errors(action), self._engine.connect() as conn:
            low, high = conn.exec_driver_sql("SELECT min(rowid), max(rowid) FROM sync_state").one()
            if low is None:
                return []
            rowids = range(low, high + 1)
            everything = len(rowids) <= size * _ROWIDS_PER_SAMPLE
            drawn = rowids if everything else random.sample(rowids, size * _ROWIDS_PER_SAMPLE)
            keys = [key for (key,) in conn.exec_driver_sql(
                "SELECT s.key FROM json_each(?) AS j CROSS JOIN sync_state AS s "
                "WHERE s.rowid = j.value AND s.resource = ? AND s.status != 'gone'",
                (json.dumps(list(drawn)), resource),
            )]
        if len(keys) > size:
            return random.sample(keys, size)
        return keys if everything or len(keys) == size else None

    def _iter_keys(
        self, resource: str, which: sa.ColumnElement[bool], chunk: int,
        after: str | None = None,
    ) -> Iterator[list[str]]:
        base = (
            sa.select(_c.key)
            .where(_c.resource == resource, which)
            .order_by(_c.key)
            .limit(chunk)
        )
        last = after
        while True:
            stmt = base if last is None else base.where(_c.key > last)
            keys = [row[0] for row in self._fetch(f"list {resource} keys", stmt)]
            if keys:
                yield keys
            if len(keys) < chunk:
                return
            last = keys[-1]

    def force(self, resources: Sequence[str]) -> int:
        """Mark every live row of `resources` (empty: all) to be sent whatever its fingerprint."""
        stmt = sa.update(sync_state).where(_LIVE).values(forced=True)
        if resources:
            stmt = stmt.where(_c.resource.in_(list(resources)))
        return self._update("force a resync", stmt)

    def forced_count(self, resource: str) -> int:
        """Rows of `resource` a resync still wants sent."""
        stmt = sa.select(sa.func.count()).where(
            _c.resource == resource, _c.forced.is_(True), _LIVE
        )
        return self._scalar_int(f"count forced {resource}", stmt)

    def retry_rejected(self, resource: str | None = None) -> int:
        """Rejected rows (of `resource`, or all) become pending, to be sent next cycle."""
        stmt = (
            sa.update(sync_state)
            .where(_c.status == Status.REJECTED.value)
            .values(status=Status.PENDING.value, attempts=0, updated_at=utc_now())
        )
        if resource is not None:
            stmt = stmt.where(_c.resource == resource)
        return self._update("retry rejected records", stmt)

    def rejected(self, resource: str, limit: int = 100) -> list[StateRow]:
        """The most recently rejected rows of `resource`, newest first."""
        stmt = (
            sa.select(*statements.ROW_COLUMNS)
            .where(_c.resource == resource, _c.status == Status.REJECTED.value)
            .order_by(_c.updated_at.desc(), _c.key)
            .limit(limit)
        )
        return [state_row(row) for row in self._fetch(f"list rejected {resource}", stmt)]

    def top_reasons(
        self, resource: str, limit: int = 5, status: Status = Status.REJECTED
    ) -> list[tuple[str, int]]:
        """Why rows of `resource` are in `status` (rejected: default), commonest reasons first."""
        count = sa.func.count().label("n")
        stmt = (
            sa.select(_c.last_error, count)
            .where(_c.resource == resource, _c.status == status.value)
            .group_by(_c.last_error)
            .order_by(count.desc(), _c.last_error)
            .limit(limit)
        )
        return [
            (reason or "(no reason recorded)", n)
            for reason, n in self._fetch(f"summarise {resource} {status} reasons", stmt)
        ]
