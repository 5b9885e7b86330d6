"""Is the daemon doing its job? The answer /healthz gives, kept up to date by the scheduler.

Healthy (200) means: a standby replica, waiting its turn; or an active daemon whose last
cycle that got records through (fully, or partly: one resource failing while the others go
on) is younger than `stale_after`, or whose current cycle is still making progress (a first
sync or a resync may run for hours). Otherwise 503: cycles keep failing, or it is stuck.
The status says more: ok, degraded (the last cycle had errors or rejected at least
CDC_SYNC_REJECTION_THRESHOLD records, an edit of the mapping was refused, or a mapping change
is held) or standby. A refused edit or a held change leaves the
code at 200: the daemon still works, on its last good mapping, and restarting it would not
help (it would refuse to start on the broken file); the body lists the problems and the holds.
An operator who wants orchestrators to alert while a change is held sets
CDC_SYNC_HEALTH_FAILS_ON_HOLD: then a held change answers 503.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cdc_sync.core.report import CycleKind
from cdc_sync.daemon.outcome import CycleOutcome, CycleResult


class Health:
    """Thread-safe record of the daemon's role and cycles; `check` renders it."""

    def __init__(self, *, stale_after: float, clock: Callable[[], float] = time.time,
                 fails_on_hold: bool = False) -> None:
        self.stale_after = stale_after
        # CDC_SYNC_HEALTH_FAILS_ON_HOLD: the operator wants an alert while a change is held.
        self.fails_on_hold = fails_on_hold
        self._clock = clock
        self._lock = threading.Lock()
        self._active = False
        self._active_since: float | None = None
        self._finished_since_active = False
        self._running: CycleKind | None = None
        self._running_since = 0.0
        self._last_progress = 0.0
        self._last_success: float | None = None
        self._last_partial: float | None = None
        self._last: CycleOutcome | None = None
        self._failures = 0
        self._last_error: str | None = None
        self._standby_error: str | None = None
        self._mapping_problems: list[str] = []
        self._held: dict[str, int] = {}

    def set_active(self, active: bool) -> None:
        with self._lock:
            self._active = active
            self._active_since = self._clock() if active else None
            self._finished_since_active = False
            self._standby_error = None

    def standby_failed(self, error: str | None) -> None:
        """A standby could not even try for the lease (state DB unreachable): unhealthy."""
        with self._lock:
            self._standby_error = error

    def mapping_refused(self, problems: list[str] | None) -> None:
        """The problems of a refused mapping edit (None: the mapping in force is fine)."""
        with self._lock:
            self._mapping_problems = list(problems or ())

    def mapping_held(self, held: dict[str, int]) -> None:
        """Held mapping changes: records each would resend, per resource."""
        with self._lock:
            self._held = dict(held)

    def cycle_started(self, kind: CycleKind) -> None:
        with self._lock:
            self._running = kind
            self._running_since = self._last_progress = self._clock()

    def progress(self) -> None:
        with self._lock:
            self._last_progress = self._clock()

    def cycle_finished(self, outcome: CycleOutcome) -> None:
        with self._lock:
            self._running = None
            self._last = outcome
            self._finished_since_active = True
            result = outcome.result
            if outcome.ok:  # ok, or ok but for rejected records: it went through
                self._failures = 0
                self._last_success = outcome.finished_at
                self._last_error = None
            elif result in (CycleResult.PARTIAL, CycleResult.FAILED):
                self._failures += 1
                self._last_error = "; ".join(outcome.errors) or "the cycle failed"
                if result is CycleResult.PARTIAL:
                    self._last_partial = outcome.finished_at

    def check(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for /healthz."""
        with self._lock:
            now = self._clock()
            fresh = self._fresh(now)
            rejected = self._last is not None and self._last.result is CycleResult.REJECTED
            troubled = self._failures or self._mapping_problems or self._held or rejected
            status = "degraded" if troubled else "ok"
            if not self._active:
                status = "standby"
            body = {
                "status": status,
                "active": self._active,
                "last_success_age_seconds": _age(now, self._last_success),
                "last_success_at": _iso(self._last_success),
                "last_error": self._last_error if self._active else self._standby_error,
                "consecutive_failures": self._failures,
                "cycle_running": self._running,
                "cycle_seconds": round(now - self._running_since, 3) if self._running else None,
                "last_cycle": self._last_cycle(),
                "mapping_problems": list(self._mapping_problems),
                "held_mapping_changes": dict(self._held),
                "stale_after_seconds": self.stale_after,
                "pid": os.getpid(),
            }
        healthy = fresh if self._active else self._standby_error is None
        if self._active and self.fails_on_hold and self._held:
            healthy = False
        return (200 if healthy else 503), body

    def _fresh(self, now: float) -> bool:
        signs = [self._last_success, self._last_partial]
        if self._running is not None:
            signs.append(self._last_progress)
        if not self._finished_since_active:
            signs.append(self._active_since)  # just became active: the first cycle is due
        newest = max((s for s in signs if s is not None), default=None)
        return newest is not None and now - newest <= self.stale_after

    def _last_cycle(self) -> dict[str, Any] | None:
        last = self._last
        if last is None:
            return None
        return {
            "kind": last.kind, "result": last.result,
            "seconds": round(last.seconds, 3), "finished_at": _iso(last.finished_at),
            "sent": last.total("sent"), "rejected": last.total("rejected"),
            "pending": last.total("pending"), "errors": last.errors,
        }


def _age(now: float, then: float | None) -> float | None:
    return None if then is None else round(now - then, 3)


def _iso(when: float | None) -> str | None:
    return None if when is None else datetime.fromtimestamp(when, UTC).isoformat()
