"""Resyncs the daemon runs: taken from `cdc-sync resync` requests, or resumed after a stop."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from cdc_sync.core.resources import Resource
from cdc_sync.errors import StateError
from cdc_sync.state import ResyncRequest

log = logging.getLogger("cdc_sync.daemon")


class RequestLedger(Protocol):
    """What a resync job needs of state: closing its request (`StateStore` is one)."""

    def finish_resync_request(self, request_id: int) -> None: ...


@dataclass
class ResyncJob:
    """One resync to run, retried after a failure until it succeeds."""

    resources: tuple[Resource, ...]  # empty: every mapped resource
    confirm: bool = False
    restart: bool = False
    request_id: int | None = None
    requested_by: str | None = None
    attempts: int = 0

    def finish(self, state: RequestLedger) -> None:
        """Record that the request behind this job is done (a resumed resync has none)."""
        if self.request_id is None:
            return
        try:
            state.finish_resync_request(self.request_id)
        except StateError as exc:
            log.warning("resync request %d is done but could not be marked so: %s",
                        self.request_id, exc)


def job_for(request: ResyncRequest, state: RequestLedger) -> ResyncJob | None:
    """The job for a request; None (and the request closed, with a log line) if it is invalid."""
    try:
        resources = tuple(Resource(name) for name in request.resources)
    except ValueError:
        log.error("resync request %d from %s names an unknown resource (%s); ignored", request.id,
                  request.requested_by or "?", ", ".join(request.resources))
        ResyncJob((), request_id=request.id).finish(state)
        return None
    log.info("resync request %d from %s: %s%s", request.id, request.requested_by or "?",
             ", ".join(resources) or "every resource",
             "".join(f", --{flag}" for flag in ("confirm", "restart") if getattr(request, flag)))
    return ResyncJob(resources, confirm=request.confirm, restart=request.restart,
                     request_id=request.id, requested_by=request.requested_by)
