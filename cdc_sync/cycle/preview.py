"""What a mapping edit would resend, counted before anything is sent.

A changed mapping changes records whose source rows did not change, so the cycle after an edit
reads everything. Before that read sends anything, the engine counts what it would send: one
dry-run full read (no state written, nothing sent) through a planner and a delete handler built
for the new mapping. The engine then applies the change or holds it for a confirm.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum

from cdc_sync.core.records import Readings
from cdc_sync.core.report import ResourceReport
from cdc_sync.cycle.deletes import DeleteHandler
from cdc_sync.cycle.planner import Planner
from cdc_sync.errors import DeleteGuardError, SourceError

log = logging.getLogger(__name__)


class MappingChange(Enum):
    """What this cycle does about the resource's mapping."""

    UNCHANGED = "unchanged"  # as last applied: the usual read
    APPLY = "apply"  # changed: read everything and send what the change touches
    HOLD = "hold"  # changed, resending too much: sync on the mapping applied before


def preview(planner: Planner, deletes: DeleteHandler, read: Callable[[], Readings],
            live_before: int) -> ResourceReport:
    """The planner's report after a dry-run full read: `would_send` of it is what the change
    would send. `planner` and `deletes` run dry (nothing sent or written; gone records are
    counted and sampled); `read` reads every source row; `live_before` is the live records
    state held before (what `deletes` compares the read with).

    A source or guard error ends the count early (the real read that follows reports it).
    """
    try:
        deletes.precheck(full=True)
        everything = read()
        for _ in planner.items(everything.rows, everything.compose):
            pass  # counting and sampling happen inside the planner
        if not planner.stopped:
            deletes.detect(live_before=live_before, seen_live=planner.seen_live)
    except (SourceError, DeleteGuardError) as exc:
        planner.report.error = str(exc)
        log.error("%s: %s", planner.resource, exc)
    return planner.report


def would_send(report: ResourceReport) -> int:
    """Records a mapping change would send: those new or changed under it."""
    return report.counts.new + report.counts.changed
