"""What the state store hands out and takes in: plain frozen values, no database types."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

# How a run ended: defined with the cycle report (pure), stored by the run history.
from cdc_sync.core.report import RunStatus as RunStatus


class Status(StrEnum):
    """Where a record stands with Metrilo."""

    SYNCED = "synced"  # Metrilo answered 200 for synced_fingerprint
    PENDING = "pending"  # to be sent (again) next cycle: a transient failure or a retry
    REJECTED = "rejected"  # invalid as it is; waits until the record changes or a retry
    GONE = "gone"  # no longer in the shop


@dataclass(frozen=True, slots=True)
class StateRow:
    """What state knows about one record of a resource.

    `StateStore.lookup` (the planner's hot path) leaves `synced_at` None: none of its callers
    reads it, and converting a timestamp per row costs more than the rest of the row;
    `StateStore.rejected` fills it.
    """

    key: str
    metrilo_id: str | None
    status: Status
    synced_fingerprint: str | None
    attempt_fingerprint: str | None
    tags: tuple[str, ...]
    forced: bool
    attempts: int
    last_error: str | None
    synced_at: datetime | None
    has_payload: bool = False  # state keeps the accepted record (see Outcome.payload)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of sending (or trying to send) one record, to be written to state."""

    key: str
    metrilo_id: str | None
    fingerprint: str
    tags: tuple[str, ...] = ()
    reason: str | None = None
    # Canonical JSON of the record, kept with a synced row only where an on_delete action
    # needs to send it again later (orders with `on_delete: status`); None keeps nothing.
    payload: str | None = None
    # Hash of the raw source row and the resource's mapping, stored with a synced row so the
    # next cycle can tell the row unchanged without composing it (see StateStore.source_marks).
    source_fingerprint: str | None = None
    # When set: send this record once more after this time (an attempt with an unknown
    # outcome may still be applied by Metrilo, over this version).
    recheck_after: datetime | None = None
    # State held this record synced under this same Metrilo id when it was planned (a record
    # sent again): marking it synced changes neither its status nor its id, which lets the
    # write skip their indexes (StateStore.mark_synced; checked there, never trusted blindly).
    synced_before: bool = False

    def with_reason(self, reason: str) -> Outcome:
        """The same outcome, with why it was rejected or left pending."""
        return replace(self, reason=reason)


class SourceMark(NamedTuple):
    """What a synced row remembers of its source row: enough to skip composing it unchanged."""

    source_fingerprint: str
    has_payload: bool  # state keeps the accepted record (see Outcome.payload)


@dataclass(frozen=True, slots=True)
class RunRow:
    """One sync, resync or retry run, as recorded in the run history."""

    id: int
    kind: str
    started_at: datetime
    finished_at: datetime | None
    status: str  # a RunStatus value (a plain str: what an older version wrote stays readable)
    counts: dict[str, dict[str, int]]
    error: str | None
    owner: str | None = None  # "pid@host" of the process that ran it
    unfinished: tuple[str, ...] = ()  # resources it had not finished when it last wrote


@dataclass(frozen=True, slots=True)
class ResyncRequest:
    """A request (usually from the CLI) that the daemon resync some resources; empty = all."""

    id: int
    resources: tuple[str, ...]
    requested_at: datetime
    requested_by: str | None
    started_at: datetime | None
    confirm: bool = False  # also send a held mapping change (`resync --confirm`)
    restart: bool = False  # start over instead of resuming (`resync --restart`)
