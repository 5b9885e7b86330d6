"""Records gone from the shop: find them after a full read, guard, and apply the mapped action.

Metrilo has no delete endpoint. Per resource, `on_delete` says what to do: record the key as
gone (the default; it is sent again if it comes back), tag the customer, or send the order
again with a status. A guard refuses to treat more than `sync.delete_guard` of a resource as
gone in one cycle: an emptied or broken source must not look like a mass deletion.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cdc_sync.errors import DeleteGuardError
from cdc_sync.mapping.model import DeleteAction
from cdc_sync.report import ResourceReport, Sample
from cdc_sync.resources import Resource

if TYPE_CHECKING:
    from cdc_sync.engine import SyncEngine

log = logging.getLogger(__name__)

EXISTENCE_CHUNK = 1000


class DeleteHandler:
    """Gone-record detection for one resource after a full read."""

    def __init__(
        self, engine: SyncEngine, resource: Resource, report: ResourceReport, *, dry_run: bool
    ) -> None:
        self.engine = engine
        self.resource = resource
        self.report = report
        self.dry_run = dry_run

    def detect(self, *, live_before: int, seen_live: int) -> None:
        """Find, guard and handle keys in state that the full read did not see.

        When every live key was seen (the usual case) nothing more is read. Otherwise live keys
        are checked against the source in chunks, keeping at most the guard's worth in memory.
        """
        if seen_live >= live_before:
            return
        limit = int(live_before * self.engine.mapping.spec.sync.delete_guard)
        gone = self._find_gone(limit, live_before)
        if not gone:
            return
        self.report.counts.gone += len(gone)
        if self.dry_run:
            self.report.samples.extend(Sample("gone", k, {}) for k in gone[:3])
            return
        self._apply(gone)

    def _find_gone(self, limit: int, live_before: int) -> list[str]:
        state, source = self.engine.state, self.engine.source
        gone: list[str] = []
        for keys in state.iter_live_keys(self.resource, chunk=EXISTENCE_CHUNK):
            existing = source.existing_keys(self.resource, keys)
            gone.extend(k for k in keys if k not in existing)
            if len(gone) > limit:
                raise DeleteGuardError(self._guard_message(live_before))
        return gone

    def _guard_message(self, live_before: int) -> str:
        share = self.engine.mapping.spec.sync.delete_guard
        return (
            f"more than {share:.0%} of the {live_before} {self.resource} records Metrilo holds "
            f"are gone from the shop in one cycle; refusing to treat them as deleted. Check the "
            f"source (an emptied table, a broken `where:` or query) or, if the deletions are real, "
            f"raise sync.delete_guard in mappings.yaml for one cycle"
        )

    def _apply(self, gone: list[str]) -> None:
        spec = getattr(self.engine.mapping.spec, self.resource.value, None)
        action = spec.on_delete if spec is not None and hasattr(spec, "on_delete") else None
        if action is not None and action.action is DeleteAction.TAG:
            self._tag_customers(gone, action.tag)
        elif action is not None and action.action is DeleteAction.STATUS:
            log.warning(
                "%s: on_delete status is not supported yet; %d records recorded as gone",
                self.resource, len(gone),
            )
        self.engine.state.mark_gone(self.resource, gone)
        log.info("%s: %d records gone from the shop", self.resource, len(gone))

    def _tag_customers(self, gone: list[str], tag: str) -> None:
        client = self.engine.client
        if client is None:
            return
        rows = self.engine.state.lookup(self.resource, gone)
        for key in gone:
            row = rows.get(key)
            if row is not None and row.metrilo_id:
                client.tag(row.metrilo_id, [tag])
