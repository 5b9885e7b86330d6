"""Full resync: send everything whatever the fingerprints say, resumably.

A resync marks every state row of the chosen resources as forced (one UPDATE) and records
which resources a resync is under way for. Each batch Metrilo accepts clears its rows' flag,
so a resync killed halfway goes on where it stopped: the next `resync` (or any full read)
sends only the rows still forced, plus records never sent at all; resources already finished
in it are not forced again. The resync is over once none of its rows is forced any more; a
forced row that fails becomes pending instead, and pending rows are retried by every cycle,
so nothing is left behind. `--restart` forces everything again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from cdc_sync.core.report import CycleKind, CycleReport
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.engine import SyncEngine
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.state import meta_keys
from cdc_sync.state.meta_keys import MetaStore


def active_resync(engine: SyncEngine) -> list[Resource] | None:
    """The resources of an unfinished resync, or None."""
    return unfinished_resync(engine.state)


def unfinished_resync(state: MetaStore) -> list[Resource] | None:
    """The resources of an unfinished resync recorded in `state`, or None."""
    stored = state.get_meta(meta_keys.RESYNC_ACTIVE)
    if not stored:
        return None
    return [Resource(name) for name in json.loads(stored)] or None


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
    active = set(active_resync(engine) or ())
    if not dry_run:
        # Resources already under way resume where they stopped; the others start now.
        starting = chosen if restart else [r for r in chosen if r not in active]
        if starting:
            engine.state.force([r.value for r in starting])
        active |= set(chosen)
        _store_active(engine, active)
    options = CycleOptions(
        kind=CycleKind.RESYNC, resources=tuple(chosen), dry_run=dry_run, full=True,
        accept_mapping=confirm, assume_forced=dry_run,
    )
    report = engine.run(options)
    if not dry_run and all(_finished(engine, r) for r in active):
        _store_active(engine, set())
    return report


def _finished(engine: SyncEngine, resource: Resource) -> bool:
    if resource not in engine.mapped_resources():
        return True  # unmapped or disabled: nothing of it will ever be sent
    return engine.state.forced_count(resource.value) == 0


def _store_active(engine: SyncEngine, resources: set[Resource]) -> None:
    engine.state.set_meta(meta_keys.RESYNC_ACTIVE, json.dumps(sorted(r.value for r in resources)))
