"""What a cycle did, per resource: counts, samples, errors (pure data, printed by the CLI)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from cdc_sync.core.resources import Resource


class CycleKind(StrEnum):
    """What a cycle was asked to do; the run history stores the value."""

    SYNC = "sync"  # send what changed (incremental where a cursor allows)
    RESYNC = "resync"  # read everything and resend what resync forced
    RETRY = "retry"  # read everything again, to resend what was rejected


class RunStatus(StrEnum):
    """How a run ended, as the run history stores it and `status` shows it."""

    RUNNING = "running"
    OK = "ok"
    # It went through, but at least CDC_SYNC_REJECTION_THRESHOLD records were rejected.
    REJECTED = "rejected"
    FAILED = "failed"  # a resource or the whole cycle stopped on an error
    # Stopped before the end (SIGTERM, a resync waiting) or its process died: the rest is
    # read next cycle.
    INTERRUPTED = "interrupted"


class ReadMode(StrEnum):
    """How a resource was read in a cycle, as the report prints it."""

    FULL = "full"
    INCREMENTAL = "incremental"
    FULL_DRY_RUN = "full dry-run"
    INCREMENTAL_DRY_RUN = "incremental dry-run"
    HELD = "held"  # a mapping change waits for confirmation; nothing was read

    @classmethod
    def of(cls, *, full: bool, dry_run: bool) -> ReadMode:
        if full:
            return cls.FULL_DRY_RUN if dry_run else cls.FULL
        return cls.INCREMENTAL_DRY_RUN if dry_run else cls.INCREMENTAL


@dataclass
class ResourceCounts:
    """Counts for one resource in one cycle; `as_dict` is what the run history stores."""

    scanned: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    retried: int = 0
    forced: int = 0
    gone: int = 0
    sent: int = 0
    rejected: int = 0
    pending: int = 0
    waiting: int = 0
    untagged: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def bump(self, name: str, by: int = 1) -> None:
        setattr(self, name, getattr(self, name) + by)


COUNT_NAMES = tuple(f.name for f in fields(ResourceCounts))
"""The counts in the order reports print them."""


@dataclass
class Sample:
    """One record a dry run would send, to show the user what a change looks like."""

    change: str
    key: str
    payload: dict[str, Any]


@dataclass
class ResourceReport:
    resource: Resource
    mode: ReadMode = ReadMode.FULL
    counts: ResourceCounts = field(default_factory=ResourceCounts)
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    reconciled: int = 0  # rows a rolling-reconciliation slice read (counted in scanned too)


@dataclass
class CycleReport:
    """The whole cycle; `ok` is false when any resource stopped on an error."""

    kind: CycleKind
    dry_run: bool = False
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    resources: dict[Resource, ResourceReport] = field(default_factory=dict)
    error: str | None = None
    stopped: bool = False  # a stop was requested; the cycle ended early, cleanly
    # The resources not read to their end yet, in import order: all of them at the start,
    # none once the cycle went through; what a stopped cycle leaves to the next one.
    unfinished: list[Resource] = field(default_factory=list)
    # Records rejected in the cycle from which it counts as rejected; 0: never.
    rejection_threshold: int = 1

    def for_resource(self, resource: Resource) -> ResourceReport:
        return self.resources.setdefault(resource, ResourceReport(resource))

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.error is None for r in self.resources.values())

    @property
    def status(self) -> RunStatus:
        """Failed over interrupted over rejected over ok: the worst thing that happened."""
        if not self.ok:
            return RunStatus.FAILED
        if self.stopped:
            return RunStatus.INTERRUPTED
        if self.rejection_threshold and self.total("rejected") >= self.rejection_threshold:
            return RunStatus.REJECTED
        return RunStatus.OK

    def total(self, count: str) -> int:
        """A count ("sent", "rejected"...) summed over the resources."""
        return sum(getattr(r.counts, count) for r in self.resources.values())

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def counts(self) -> dict[str, dict[str, int]]:
        return {str(r): rep.counts.as_dict() for r, rep in self.resources.items()}

    def errors(self) -> list[str]:
        found = [f"{r}: {rep.error}" for r, rep in self.resources.items() if rep.error]
        return ([self.error] if self.error else []) + found
