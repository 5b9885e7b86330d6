"""Progress of long work: a live line in a terminal, periodic log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time

from cdc_sync.engine import ProgressCallback
from cdc_sync.report import ResourceCounts
from cdc_sync.resources import Resource

log = logging.getLogger("cdc_sync.progress")

LOG_EVERY_SECONDS = 10.0


def progress_callback(*, interactive: bool | None = None) -> ProgressCallback:
    """A callback for SyncEngine(on_progress=...): rate in records/s per resource."""
    live = sys.stderr.isatty() if interactive is None else interactive
    started: dict[Resource, float] = {}
    last_log = [0.0]

    def show(resource: Resource, counts: ResourceCounts) -> None:
        now = time.monotonic()
        begun = started.setdefault(resource, now)
        elapsed = now - begun
        # A rate over the first instants says nothing (the first chunk arrives at once).
        rate = f", {counts.scanned / elapsed:,.0f} records/s" if elapsed >= 1.0 else ""
        text = (f"{resource}: {counts.scanned:,} read, {counts.sent:,} sent, "
                f"{counts.rejected:,} rejected{rate}")
        if live:
            sys.stderr.write(f"\r\x1b[2K{text}")
            sys.stderr.flush()
        elif now - last_log[0] >= LOG_EVERY_SECONDS:
            last_log[0] = now
            log.info("progress: %s", text)

    return show
