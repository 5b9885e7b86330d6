"""Resync requests: the CLI asks, the daemon takes each request once and finishes it."""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa

from cdc_sync.state.access import StateAccess, utc_now
from cdc_sync.state.rows import ResyncRequest
from cdc_sync.state.tables import resync_requests

_TAKE_ATTEMPTS = 5


class ResyncRequests(StateAccess):
    """The queue of resync requests handed to a running daemon."""

    def request_resync(
        self, resources: Sequence[str], requested_by: str, *, confirm: bool = False,
        restart: bool = False,
    ) -> int:
        """Ask the daemon to resync `resources` (empty: all) at its next look; returns the id."""
        stmt = sa.insert(resync_requests).values(
            resources=json.dumps(list(resources)), requested_at=utc_now(),
            requested_by=requested_by, confirm=confirm, restart=restart,
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
                .values(started_at=utc_now())
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
            .values(finished_at=utc_now())
        )
        self._update(f"finish resync request {request_id}", stmt)
