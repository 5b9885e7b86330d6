"""What follows every daemon cycle: health and metrics told, the backoff moved, one log line
by how it ended, state counts for /metrics, the live mapping's view, the webhook.

Apart from the scheduler, which decides what runs when; this only records how a run ended.
"""

from __future__ import annotations

import logging
import time

from cdc_sync.daemon.backoff import Backoff
from cdc_sync.daemon.connections import Connections
from cdc_sync.daemon.health import Health
from cdc_sync.daemon.live_mapping import LiveMapping
from cdc_sync.daemon.metrics import Metrics
from cdc_sync.daemon.outcome import CycleOutcome, CycleResult
from cdc_sync.daemon.webhook import Webhook
from cdc_sync.errors import StateError

# The daemon's own logger, as the scheduler's: one place to follow the daemon's lines.
log = logging.getLogger("cdc_sync.daemon")


class CycleBookkeeping:
    """The daemon's parts a finished cycle updates; `after(outcome)` once per cycle."""

    def __init__(self, *, health: Health, metrics: Metrics, backoff: Backoff,
                 connections: Connections, live: LiveMapping, webhook: Webhook | None) -> None:
        self._health = health
        self._metrics = metrics
        self._backoff = backoff
        self._connections = connections
        self._live = live
        self._webhook = webhook

    def after(self, outcome: CycleOutcome) -> None:
        """Everything that follows a finished cycle, in this order."""
        self._health.cycle_finished(outcome)
        self._metrics.cycle_finished(outcome)
        result = outcome.result
        if result is CycleResult.FAILED:
            delay = self._backoff.failed(time.monotonic())
            self._connections.reset()
            log.error("%s cycle failed after %.1fs: %s; next attempt in %.0fs", outcome.kind,
                      outcome.seconds, "; ".join(outcome.errors) or "unknown error", delay,
                      extra=outcome.log_fields())
        elif result is CycleResult.PARTIAL:
            self._backoff.succeeded()
            log.error("%s cycle partly failed in %.1fs: %s; errors: %s", outcome.kind,
                      outcome.seconds, outcome.summary(), "; ".join(outcome.errors),
                      extra=outcome.log_fields())
        elif result is CycleResult.REJECTED:
            self._backoff.succeeded()  # sending again would not help: the data must change
            log.warning("%s cycle rejected %d records in %.1fs: %s; `cdc-sync rejected "
                        "RESOURCE` lists them", outcome.kind, outcome.total("rejected"),
                        outcome.seconds, outcome.summary(), extra=outcome.log_fields())
        else:
            if result is CycleResult.OK:
                self._backoff.succeeded()
            log.info("%s cycle %s in %.1fs: %s", outcome.kind,
                     "stopped early" if result is CycleResult.STOPPED else "ok", outcome.seconds,
                     outcome.summary(), extra=outcome.log_fields())
        self._count_state(outcome)
        self._live.after_cycle(outcome.report, self._connections.state)
        if self._webhook is not None:
            self._webhook.cycle_finished(outcome)

    def _count_state(self, outcome: CycleOutcome) -> None:
        if outcome.report is None:
            return
        try:
            for resource in outcome.report.resources:
                counts = self._connections.state.count_by_status(resource.value)
                self._metrics.set_state_counts(
                    resource.value, {status.value: n for status, n in counts.items()})
        except StateError as exc:
            log.debug("state counts for /metrics not refreshed: %s", exc)

