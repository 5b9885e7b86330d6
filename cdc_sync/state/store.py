"""StateStore: the only reader and writer of the state DB.

Every call runs in its own short transaction and holds no connection between calls, so the
daemon and the CLI can share a SQLite file. The hot calls (lookup, mark_*) run once per chunk
of a million-record cycle: one statement each, prebuilt, with executemany for writes.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from cdc_sync.errors import StateError
from cdc_sync.state import migrate, statements
from cdc_sync.state.engine import SUPPORTED_DIALECTS, create_state_engine, state_errors
from cdc_sync.state.rows import Outcome, ResyncRequest, RunRow, StateRow, Status
from cdc_sync.state.tables import meta, resync_requests, runs, sync_state

_c = sync_state.c
_STATUS = {s.value: s for s in Status}
# A synced row wins: the Metrilo id exists at Metrilo whatever its other rows say.
_DEPENDENCY_RANK = {Status.SYNCED: 0, Status.PENDING: 1, Status.REJECTED: 2, Status.GONE: 3}
_NO_TAGS = "[]"
_TAKE_ATTEMPTS = 5


def _now() -> datetime:
    return datetime.now(UTC)


def _tags_json(tags: tuple[str, ...]) -> str:
    return json.dumps(list(tags), ensure_ascii=False) if tags else _NO_TAGS


def _tags(text: str) -> tuple[str, ...]:
    return () if text == _NO_TAGS else tuple(json.loads(text))


def _state_row(row: Sequence[Any]) -> StateRow:
    key, metrilo_id, status, synced_fp, attempt_fp, tags, forced, attempts, error, at, kept = row
    return StateRow(
        key, metrilo_id, _STATUS[status], synced_fp, attempt_fp, _tags(tags), bool(forced),
        attempts, error, at, bool(kept),
    )


def _unique(outcomes: Sequence[Outcome]) -> Iterator[Outcome]:
    """The outcomes, the last one winning for a key given twice."""
    return iter({o.key: o for o in outcomes}.values())


class StateStore:
    """Sync state per record, run history, meta values and resync requests."""

    def __init__(self, engine: sa.Engine) -> None:
        """Use `engine` (not disposed by `close`); the tables must exist (see `migrate`)."""
        dialect = engine.dialect.name
        if dialect not in SUPPORTED_DIALECTS:
            raise StateError(
                f"state DB {engine.url.render_as_string()}: {dialect} is not supported; "
                "fix: use a sqlite:/// or postgresql+psycopg:// URL for the state DB"
            )
        self._engine = engine
        self._dialect = dialect
        self._owns_engine = False
        self._hot = statements.build(dialect)

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True) -> StateStore:
        """Connect to the state DB at `url`; with `upgrade`, migrate it to the latest schema."""
        engine = create_state_engine(url)
        try:
            if upgrade:
                migrate.upgrade(engine)
            store = cls(engine)
        except BaseException:
            engine.dispose()
            raise
        store._owns_engine = True
        return store

    def close(self) -> None:
        """Release the connections, if this store created the engine."""
        if self._owns_engine:
            self._engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    def _errors(self, action: str) -> AbstractContextManager[None]:
        return state_errors(self._engine.url, action)

    # -- per-record state: the hot path ------------------------------------------------------

    def lookup(self, resource: str, keys: Sequence[str]) -> dict[str, StateRow]:
        """State rows of these keys (absent keys are new), in ONE query: pass <= 1000 keys."""
        if not keys:
            return {}
        with self._errors(f"look up {resource} state"), self._engine.connect() as conn:
            rows = conn.execute(self._hot.lookup, {"resource": resource, "keys": list(keys)})
            return {row[0]: _state_row(row) for row in rows}

    def mark_synced(self, resource: str, outcomes: Sequence[Outcome]) -> None:
        """Metrilo answered 200 for these: synced at their fingerprint, with their tags."""
        if not outcomes:
            return
        now = _now()
        params = [
            {
                "resource": resource, "key": o.key, "metrilo_id": o.metrilo_id,
                "status": "synced", "synced_fingerprint": o.fingerprint,
                "attempt_fingerprint": o.fingerprint, "tags": _tags_json(o.tags),
                "forced": False, "attempts": 0, "last_error": None,
                "synced_at": now, "updated_at": now, "payload": o.payload,
            }
            for o in _unique(outcomes)
        ]
        self._write(f"record {len(params)} synced {resource}", self._hot.synced, params)

    def mark_rejected(self, resource: str, outcomes: Sequence[Outcome]) -> None:
        """Invalid as sent: rejected with the reason until the record changes or is retried."""
        self._mark_failed(resource, outcomes, Status.REJECTED)

    def mark_pending(self, resource: str, outcomes: Sequence[Outcome]) -> None:
        """Not accepted this time (transient failure, waiting dependency): sent next cycle."""
        self._mark_failed(resource, outcomes, Status.PENDING)

    def _mark_failed(self, resource: str, outcomes: Sequence[Outcome], status: Status) -> None:
        if not outcomes:
            return
        now = _now()
        params = [
            {
                "resource": resource, "key": o.key, "metrilo_id": o.metrilo_id,
                "status": status.value, "synced_fingerprint": None,
                "attempt_fingerprint": o.fingerprint, "tags": _NO_TAGS,
                "forced": False, "attempts": 1, "last_error": o.reason,
                "synced_at": None, "updated_at": now,
            }
            for o in _unique(outcomes)
        ]
        self._write(f"record {len(params)} {status} {resource}", self._hot.failed, params)

    def mark_gone(self, resource: str, keys: Sequence[str]) -> None:
        """These records left the shop; keys state never knew are ignored."""
        if not keys:
            return
        now = _now()
        params = [{"b_resource": resource, "b_key": key, "b_now": now} for key in set(keys)]
        self._write(f"record {len(params)} gone {resource}", self._hot.gone, params)

    def mark_gone_tagged(self, resource: str, tags: Mapping[str, Sequence[str]]) -> None:
        """Gone, and Metrilo now holds these tags for them (an on_delete tag was added)."""
        if not tags:
            return
        now = _now()
        params = [
            {"b_resource": resource, "b_key": key, "b_now": now, "b_tags": _tags_json(tuple(t))}
            for key, t in tags.items()
        ]
        self._write(f"record {len(params)} gone {resource}", self._hot.gone_tagged, params)

    def keep_payloads(self, resource: str, outcomes: Sequence[Outcome]) -> None:
        """Store the payloads of rows Metrilo already holds at exactly these fingerprints."""
        params = [
            {"b_resource": resource, "b_key": o.key, "b_fingerprint": o.fingerprint,
             "b_payload": o.payload}
            for o in _unique(outcomes) if o.payload is not None
        ]
        if params:
            self._write(f"keep {len(params)} {resource} payloads", self._hot.keep_payload, params)

    def payloads(self, resource: str, keys: Sequence[str]) -> dict[str, str]:
        """The kept payloads (canonical JSON) of these keys, where kept; pass <= 1000 keys."""
        if not keys:
            return {}
        stmt = sa.select(_c.key, _c.payload).where(
            _c.resource == resource, _c.key.in_(list(keys)), _c.payload.is_not(None)
        )
        return {str(key): str(text) for key, text in self._fetch(f"read {resource} payloads", stmt)}

    def _write(self, action: str, stmt: sa.Executable, params: list[dict[str, Any]]) -> None:
        with self._errors(action), self._engine.begin() as conn:
            conn.execute(stmt, params)

    # -- per-resource questions ---------------------------------------------------------------

    def count_by_status(self, resource: str) -> dict[Status, int]:
        """How many rows of `resource` are in each status (every status present, maybe 0)."""
        stmt = (
            sa.select(_c.status, sa.func.count())
            .where(_c.resource == resource)
            .group_by(_c.status)
        )
        counts = dict.fromkeys(Status, 0)
        for status, count in self._fetch(f"count {resource} by status", stmt):
            counts[_STATUS[status]] = count
        return counts

    def live_count(self, resource: str) -> int:
        """Rows of `resource` not gone: what the shop had at the last look."""
        stmt = sa.select(sa.func.count()).where(_c.resource == resource, _c.status != "gone")
        return self._scalar_int(f"count live {resource}", stmt)

    def iter_live_keys(self, resource: str, chunk: int = 1000) -> Iterator[list[str]]:
        """Keys of `resource` not gone, in key order, `chunk` at a time (keyset pagination)."""
        return self._iter_keys(resource, _c.status != "gone", chunk)

    def iter_pending_keys(
        self, resource: str, chunk: int = 1000, *, untouched_since: datetime | None = None
    ) -> Iterator[list[str]]:
        """Keys of `resource` waiting to be sent again (and not written since `untouched_since`,
        when given), in key order, `chunk` at a time."""
        which = _c.status == "pending"
        if untouched_since is not None:
            which = sa.and_(which, _c.updated_at < untouched_since)
        return self._iter_keys(resource, which, chunk)

    def sample_live_keys(self, resource: str, size: int) -> list[str]:
        """Up to `size` keys of `resource` not gone, chosen at random (one query)."""
        stmt = (
            sa.select(_c.key)
            .where(_c.resource == resource, _c.status != "gone")
            .order_by(sa.func.random())
            .limit(size)
        )
        return [row[0] for row in self._fetch(f"sample live {resource} keys", stmt)]

    def _iter_keys(
        self, resource: str, which: sa.ColumnElement[bool], chunk: int
    ) -> Iterator[list[str]]:
        base = (
            sa.select(_c.key)
            .where(_c.resource == resource, which)
            .order_by(_c.key)
            .limit(chunk)
        )
        last: str | None = None
        while True:
            stmt = base if last is None else base.where(_c.key > last)
            keys = [row[0] for row in self._fetch(f"list {resource} keys", stmt)]
            if keys:
                yield keys
            if len(keys) < chunk:
                return
            last = keys[-1]

    def dependency_status(
        self, resources: Sequence[str], metrilo_ids: Collection[str]
    ) -> dict[str, Status]:
        """Status of each known Metrilo id across `resources`, a synced row winning; one query."""
        if not metrilo_ids or not resources:
            return {}
        stmt = sa.select(_c.metrilo_id, _c.status).where(
            _c.resource.in_(list(resources)), self._one_parameter_in(_c.metrilo_id, metrilo_ids)
        )
        found: dict[str, Status] = {}
        for metrilo_id, raw in self._fetch("check dependencies", stmt):
            status = _STATUS[raw]
            known = found.get(metrilo_id)
            if known is None or _DEPENDENCY_RANK[status] < _DEPENDENCY_RANK[known]:
                found[metrilo_id] = status
        return found

    def _one_parameter_in(
        self, column: sa.ColumnElement[str], values: Collection[str]
    ) -> sa.ColumnElement[bool]:
        """`column IN values` as ONE bound parameter: an IN list whose length changes per call
        makes a new statement each time (SQLite's statement cache grew by 40 MB over 1M orders,
        and each variant is planned afresh)."""
        if self._engine.dialect.name == "postgresql":
            return column == sa.any_(sa.literal(list(values), postgresql.ARRAY(sa.String())))
        members: sa.Select[str] = sa.select(sa.column("value", sa.String())).select_from(
            sa.func.json_each(sa.literal(json.dumps(list(values))))
        )
        return column.in_(members.scalar_subquery())

    def force(self, resources: Sequence[str]) -> int:
        """Mark every live row of `resources` (empty: all) to be sent whatever its fingerprint."""
        stmt = sa.update(sync_state).where(_c.status != "gone").values(forced=True)
        if resources:
            stmt = stmt.where(_c.resource.in_(list(resources)))
        return self._update("force a resync", stmt)

    def forced_count(self, resource: str) -> int:
        """Rows of `resource` a resync still wants sent."""
        stmt = sa.select(sa.func.count()).where(
            _c.resource == resource, _c.forced.is_(True), _c.status != "gone"
        )
        return self._scalar_int(f"count forced {resource}", stmt)

    def retry_rejected(self, resource: str | None = None) -> int:
        """Rejected rows (of `resource`, or all) become pending, to be sent next cycle."""
        stmt = (
            sa.update(sync_state)
            .where(_c.status == "rejected")
            .values(status="pending", attempts=0, updated_at=_now())
        )
        if resource is not None:
            stmt = stmt.where(_c.resource == resource)
        return self._update("retry rejected records", stmt)

    def rejected(self, resource: str, limit: int = 100) -> list[StateRow]:
        """The most recently rejected rows of `resource`, newest first."""
        stmt = (
            sa.select(*statements.ROW_COLUMNS)
            .where(_c.resource == resource, _c.status == "rejected")
            .order_by(_c.updated_at.desc(), _c.key)
            .limit(limit)
        )
        return [_state_row(row) for row in self._fetch(f"list rejected {resource}", stmt)]

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

    # -- runs, meta, resync requests ----------------------------------------------------------

    def start_run(self, kind: str) -> int:
        """Record that a run of `kind` (sync/resync/retry) started; returns its id."""
        stmt = sa.insert(runs).values(kind=kind, started_at=_now(), status="running")
        return self._insert_returning_id("record the start of a run", stmt)

    def record_run_progress(self, run_id: int, counts: Mapping[str, Mapping[str, int]]) -> None:
        """The counts so far of a run still going, so a killed run still accounts for its work."""
        stmt = sa.update(runs).where(runs.c.id == run_id).values(counts=_counts_json(counts))
        self._update(f"record the progress of run {run_id}", stmt)

    def interrupt_unfinished_runs(self) -> int:
        """Runs left `running` by a process that died (SIGKILL, power loss) become `interrupted`.

        Only the holder of the daemon lease runs cycles, so it may call this before its own.
        """
        stmt = (sa.update(runs).where(runs.c.status == "running")
                .values(status="interrupted", finished_at=_now()))
        return self._update("mark runs of dead processes interrupted", stmt)

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        counts: Mapping[str, Mapping[str, int]],
        error: str | None = None,
    ) -> None:
        """Record how run `run_id` ended (ok/failed/partial) and its per-resource counts."""
        stmt = (
            sa.update(runs)
            .where(runs.c.id == run_id)
            .values(
                finished_at=_now(), status=status, error=error,
                counts=_counts_json(counts),
            )
        )
        if self._update(f"record the end of run {run_id}", stmt) != 1:
            raise StateError(
                f"state DB {self._engine.url.render_as_string()}: run {run_id} does not exist; "
                "fix: pass the id start_run returned"
            )

    def last_runs(self, limit: int = 10) -> list[RunRow]:
        """The latest runs, newest first."""
        stmt = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
        return [
            RunRow(
                id=row.id, kind=row.kind, started_at=row.started_at,
                finished_at=row.finished_at, status=row.status,
                counts=json.loads(row.counts) if row.counts else {}, error=row.error,
            )
            for row in self._fetch("list runs", stmt)
        ]

    def get_meta(self, name: str) -> str | None:
        """The meta value `name` (a high-water mark, a mapping fingerprint...), or None."""
        stmt = sa.select(meta.c.value).where(meta.c.name == name)
        with self._errors(f"read meta {name!r}"), self._engine.connect() as conn:
            value = conn.execute(stmt).scalar_one_or_none()
        return None if value is None else str(value)

    def set_meta(self, name: str, value: str) -> None:
        """Set the meta value `name`."""
        insert = statements.upsert(self._dialect, meta)
        stmt = insert.values(name=name, value=value, updated_at=_now()).on_conflict_do_update(
            index_elements=[meta.c.name],
            set_={"value": insert.excluded.value, "updated_at": insert.excluded.updated_at},
        )
        self._write(f"write meta {name!r}", stmt, [{}])

    def request_resync(
        self, resources: Sequence[str], requested_by: str, *, confirm: bool = False,
        restart: bool = False,
    ) -> int:
        """Ask the daemon to resync `resources` (empty: all) at its next look; returns the id."""
        stmt = sa.insert(resync_requests).values(
            resources=json.dumps(list(resources)), requested_at=_now(), requested_by=requested_by,
            confirm=confirm, restart=restart,
        )
        return self._insert_returning_id("record a resync request", stmt)

    def resync_requested(self) -> bool:
        """Whether a resync request waits to be taken (one cheap query, for the daemon's poll)."""
        rr = resync_requests.c
        stmt = sa.select(rr.id).where(rr.started_at.is_(None)).limit(1)
        return bool(self._fetch("look for resync requests", stmt))

    def take_resync_request(self) -> ResyncRequest | None:
        """The oldest request not started, marked started; each request is taken once only."""
        rr = resync_requests.c
        oldest = sa.select(sa.func.min(rr.id)).where(rr.started_at.is_(None)).scalar_subquery()
        waiting = sa.select(rr.id).where(rr.started_at.is_(None)).limit(1)
        for _ in range(_TAKE_ATTEMPTS):
            # One UPDATE ... RETURNING: atomic on both backends, no read-then-write race. If
            # another process took that request first, nothing returns and we look again.
            stmt = (
                sa.update(resync_requests)
                .where(rr.id == oldest, rr.started_at.is_(None))
                .values(started_at=_now())
                .returning(
                    rr.id, rr.resources, rr.requested_at, rr.requested_by, rr.started_at,
                    rr.confirm, rr.restart,
                )
            )
            with self._errors("take a resync request"), self._engine.begin() as conn:
                row = conn.execute(stmt).first()
                if row is not None:
                    return ResyncRequest(
                        id=row.id, resources=tuple(json.loads(row.resources)),
                        requested_at=row.requested_at, requested_by=row.requested_by,
                        started_at=row.started_at, confirm=bool(row.confirm),
                        restart=bool(row.restart),
                    )
                if conn.execute(waiting).first() is None:
                    return None
        return None

    def finish_resync_request(self, request_id: int) -> None:
        """Record that the resync asked for by `request_id` is done."""
        stmt = (
            sa.update(resync_requests)
            .where(resync_requests.c.id == request_id)
            .values(finished_at=_now())
        )
        self._update(f"finish resync request {request_id}", stmt)

    # -- plumbing ----------------------------------------------------------------------------

    def _fetch(self, action: str, stmt: sa.Select[Any]) -> list[Any]:
        # Bounded by the statement's LIMIT / GROUP BY / the caller's chunk, never a table.
        with self._errors(action), self._engine.connect() as conn:
            return list(conn.execute(stmt))

    def _scalar_int(self, action: str, stmt: sa.Select[Any]) -> int:
        with self._errors(action), self._engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def _insert_returning_id(self, action: str, stmt: sa.Insert) -> int:
        with self._errors(action), self._engine.begin() as conn:
            key = conn.execute(stmt).inserted_primary_key
        assert key is not None, "an INSERT of one row has a primary key"
        return int(key[0])

    def _update(self, action: str, stmt: sa.Update) -> int:
        with self._errors(action), self._engine.begin() as conn:
            return int(conn.execute(stmt).rowcount)


def _counts_json(counts: Mapping[str, Mapping[str, int]]) -> str:
    return json.dumps({r: dict(c) for r, c in counts.items()}, sort_keys=True)
