"""What one daemon cycle (sync or resync) came to: the report, or the error that ended it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cdc_sync.core.report import CycleKind, CycleReport, RunStatus


class CycleResult(StrEnum):
    """How a daemon cycle ended; `/metrics` and `/healthz` show the value."""

    OK = "ok"
    # Went through, but at least CDC_SYNC_REJECTION_THRESHOLD records were rejected: no backoff
    # (resending would not help), but /healthz says degraded and `status` says rejected.
    REJECTED = "rejected"
    # Some resources failed, others went through: no backoff, the next tick retries them.
    PARTIAL = "partial"
    FAILED = "failed"  # nothing went through (an outage): back off
    STOPPED = "stopped"  # ended early on request, cleanly: shutdown, lease lost, a resync waiting


@dataclass(frozen=True)
class CycleOutcome:
    """A finished cycle as health, metrics and the webhook see it."""

    kind: CycleKind  # sync or resync
    finished_at: float  # wall-clock seconds (time.time())
    seconds: float
    report: CycleReport | None  # None when the cycle raised before it could report
    raised: str | None = None  # the error that ended the cycle early, if any

    @property
    def result(self) -> CycleResult:
        """How the cycle ended: ok, partial, failed or stopped (see CycleResult)."""
        report = self.report
        if self.raised is not None or report is None or report.error is not None:
            return CycleResult.FAILED
        failures = [r for r in report.resources.values() if r.error is not None]
        if failures:
            return (CycleResult.FAILED if len(failures) == len(report.resources)
                    else CycleResult.PARTIAL)
        if report.stopped:
            return CycleResult.STOPPED
        return CycleResult.REJECTED if report.status is RunStatus.REJECTED else CycleResult.OK

    @property
    def ok(self) -> bool:
        """Went through to the end: ok, or ok but for records rejected (nothing to retry)."""
        return self.result in (CycleResult.OK, CycleResult.REJECTED)

    @property
    def errors(self) -> list[str]:
        found = [self.raised] if self.raised else []
        return found + (self.report.errors() if self.report is not None else [])

    def total(self, count: str) -> int:
        """A count ("sent", "rejected"...) summed over the resources."""
        if self.report is None:
            return 0
        return sum(getattr(r.counts, count) for r in self.report.resources.values())

    def summary(self) -> str:
        """"customers 3 sent; orders 1 sent, 1 rejected", for a log line."""
        if self.report is None:
            return "nothing ran"
        parts = []
        for resource, rep in self.report.resources.items():
            shown = [f"{n} {name}" for name in ("sent", "rejected", "pending", "waiting", "gone")
                     if (n := getattr(rep.counts, name))]
            if shown:
                parts.append(f"{resource} {', '.join(shown)}")
        return "; ".join(parts) or "nothing to send"

    def log_fields(self) -> dict[str, object]:
        """Structured fields for a log line (shown by --log-json)."""
        return {
            "event": "cycle", "kind": self.kind, "result": self.result,
            "seconds": round(self.seconds, 3), "sent": self.total("sent"),
            "rejected": self.total("rejected"), "pending": self.total("pending"),
            "counts": self.report.counts() if self.report is not None else {},
        }
