"""Full resync: send everything whatever the fingerprints say, resumably.

A resync marks every state row of the chosen resources as forced (one UPDATE) and records
that a resync is under way. Each batch Metrilo accepts clears its rows' flag, so a resync
killed halfway goes on where it stopped: the next `resync` (or any cycle) sends only the rows
still forced, plus records never sent at all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from cdc_sync.engine import CycleOptions, SyncEngine
from cdc_sync.report import CycleReport
from cdc_sync.resources import Resource

ACTIVE_KEY = "resync:active"


def active_resync(engine: SyncEngine) -> list[Resource] | None:
    """The resources of an unfinished resync, or None."""
    stored = engine.state.get_meta(ACTIVE_KEY)
    if not stored:
        return None
    return [Resource(name) for name in json.loads(stored)]


def run_resync(
    engine: SyncEngine,
    resources: Sequence[Resource] = (),
    *,
    confirm: bool = False,
    restart: bool = False,
    dry_run: bool = False,
) -> CycleReport:
    """Resync the named resources (all mapped ones when empty), resuming an unfinished one."""
    chosen = list(resources) or engine.mapped_resources()
    active = active_resync(engine)
    if not dry_run and (active is None or restart or set(chosen) - set(active)):
        engine.state.force([r.value for r in chosen])
        engine.state.set_meta(ACTIVE_KEY, json.dumps(sorted({*chosen, *(active or [])})))
    options = CycleOptions(
        kind="resync", resources=tuple(chosen), dry_run=dry_run, full=True,
        accept_mapping=confirm,
    )
    report = engine.run(options)
    if report.ok and not dry_run and not any(engine.state.forced_count(r) for r in chosen):
        engine.state.set_meta(ACTIVE_KEY, "")
    return report
