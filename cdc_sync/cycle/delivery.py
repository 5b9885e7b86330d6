"""Delivery of one resource's items: the batches Metrilo answered, committed to state.

Each batch's records are marked synced only once Metrilo answered 200 for them (rejected with
the reason, pending when retries ran out); a tag gone from the shop is removed with
customer/untag first. Metrilo running out of retries stops the planner reading (`give_up`)
and ends the cycle once the batches in flight answered. The state writes (the answered
batches', and the planner's rejects, waits and marks made meanwhile) run in one writer thread
(cycle/statewriter.py), all committed before `deliver` returns or raises.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cdc_sync.core.report import ResourceReport
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.planner import Planner
from cdc_sync.cycle.statewriter import StateWriter
from cdc_sync.errors import MetriloRejectedError, MetriloUnavailableError
from cdc_sync.metrilo.client import BatchResult, Item, MetriloClient
from cdc_sync.state import Outcome

log = logging.getLogger(__name__)


class DeliveryState(Protocol):
    """What committing Metrilo's answers writes to state (`StateStore` is one)."""

    def mark_synced(self, resource: str, outcomes: Sequence[Outcome]) -> None: ...
    def mark_rejected(self, resource: str, outcomes: Sequence[Outcome]) -> None: ...
    def mark_pending(self, resource: str, outcomes: Sequence[Outcome]) -> None: ...
    @property
    def thread_bound(self) -> bool:
        """Only the cycle's thread reaches it (SQLite in memory): no writer thread."""


class Delivery:
    """Sends a resource's items and commits what Metrilo answered; owns no connection."""

    def __init__(self, *, state: DeliveryState, client: MetriloClient | None,
                 recheck_seconds: float) -> None:
        self.state = state
        self.client = client
        # How long after an attempt with an unknown outcome (a timeout) Metrilo is assumed to
        # have applied it, if ever: the record is sent once more after that (see _commit).
        self.recheck_seconds = recheck_seconds

    def deliver(
        self, resource: Resource, items: Iterable[Item], planner: Planner, rep: ResourceReport,
        give_up: threading.Event,
    ) -> None:
        if planner.dry_run or self.client is None:
            for _ in items:  # counting and sampling happen inside the planner
                pass
            return
        failure: str | None = None
        # Leaving this block is the barrier: every answered batch and every write of the
        # planner's is in state (or the writer's error raised) before anything after this
        # delivery reads state. One writer: SQLite never sees two (cycle/planwrites.py).
        threaded = not self.state.thread_bound
        with StateWriter(resource.value, threaded=threaded) as writer, \
                planner.writes.through(writer):
            for result in self.client.deliver(resource.batch_path, items):
                self._commit(resource, result, planner, rep, writer)
                if result.pending and failure is None:
                    # Metrilo ran out of retries: read no further, but let the batches in
                    # flight answer (and commit what they delivered); a 401 raises from
                    # deliver itself.
                    failure = result.pending[0][1]
                    give_up.set()
        if failure is not None:
            raise MetriloUnavailableError(unavailable(self.client.base_url, resource, failure))

    def _commit(
        self, resource: Resource, result: BatchResult, planner: Planner, rep: ResourceReport,
        writer: StateWriter,
    ) -> None:
        synced, pending, rejected = self._untag_removed(result.delivered, planner)
        if synced and _outcome_unknown(result):
            recheck = datetime.now(UTC) + timedelta(seconds=self.recheck_seconds)
            synced = [replace(o, recheck_after=recheck) for o in synced]
        rejected += [planner.answered(i.key).outcome.with_reason(why)
                     for i, why in result.rejected]
        pending += [planner.answered(i.key).outcome.with_reason(why)
                    for i, why in result.pending]
        writer.write(lambda: self._write(resource.value, synced, rejected, pending, planner, rep))
        rep.counts.rejected += len(rejected)
        rep.counts.pending += len(pending)
        for item, why in result.rejected:
            log.warning("%s %s rejected by Metrilo: %s", resource, item.key, why)

    def _write(self, resource: str, synced: Sequence[Outcome], rejected: Sequence[Outcome],
               pending: Sequence[Outcome], planner: Planner, rep: ResourceReport) -> None:
        """In the writer thread: one answered batch's outcomes into state; only then may a
        later pass of the cycle compare those records with state (`Planner.written`), and
        are they counted sent (the run history's counts, shown by `status`, count no record
        that a failed write left unsynced). Only this thread adds to `sent`."""
        self.state.mark_synced(resource, synced)
        self.state.mark_rejected(resource, rejected)
        self.state.mark_pending(resource, pending)
        planner.written([o.key for outcomes in (synced, rejected, pending) for o in outcomes])
        rep.counts.sent += len(synced)

    def _untag_removed(
        self, delivered: Sequence[Item], planner: Planner
    ) -> tuple[list[Outcome], list[Outcome], list[Outcome]]:
        """Tags merge at Metrilo, so a tag gone from the shop is removed with customer/untag."""
        synced: list[Outcome] = []
        pending: list[Outcome] = []
        rejected: list[Outcome] = []
        for item in delivered:
            entry = planner.answered(item.key)
            if entry.removed_tags and entry.outcome.metrilo_id and self.client is not None:
                try:
                    self.client.untag(entry.outcome.metrilo_id, entry.removed_tags)
                except MetriloRejectedError as exc:
                    rejected.append(entry.outcome.with_reason(f"untag refused: {exc.reason}"))
                    continue
                except MetriloUnavailableError as exc:
                    # Not synced: state keeps the old tags, so the next cycle untags again.
                    pending.append(entry.outcome.with_reason(f"untag failed: {exc}"))
                    continue
            synced.append(entry.outcome)
        return synced, pending, rejected


def unavailable(base_url: str, what: object, failure: str) -> str:
    """Why records stay pending: Metrilo at which URL said what, and where that URL is set."""
    return (f"Metrilo at {base_url} did not accept {what} records after retries: {failure}; "
            f"fix: if this lasts, check that METRILO_API_URL ({base_url}) is right and "
            "reachable from this machine; the records stay pending and are sent next cycle")


# Attempts that may have reached Metrilo although no answer came back.
_UNKNOWN_OUTCOMES = ("timeout", "network_error", "transport_error")


def _outcome_unknown(result: BatchResult) -> bool:
    """Whether an attempt of this batch may still be applied by Metrilo later."""
    return any(result.statuses.get(label) for label in _UNKNOWN_OUTCOMES)
