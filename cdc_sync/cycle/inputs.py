"""A derived resource's full read skipped while nothing it is derived from changed.

Guest customers have no table: a full read derives them anew from every order (a window over
the normalized emails, an anti-join with the customers), 4.5 s at 1M orders on PostgreSQL and
20.6 s on MariaDB, every reconciliation window, although in a quiet shop it finds nothing.
Before it, the shop computes a checksum of everything the derivation reads (one aggregate per
input, no sort: `ShopSource.inputs_checksum`). The full read is skipped, every guest counted as
seen and unchanged, only when all of these hold, else it derives as before:

- the checksum, under the same seed (mapping, version), equals the one recorded after the last
  complete full derivation that left every guest settled;
- state's guests are as that derivation left them: same rows, none written since (an
  incremental cycle that sent a guest for a change since undone leaves state differing from
  the derivation), none pending, forced or awaiting a recheck. A rejected guest is settled: a
  full read leaves it rejected until its record changes (which changes the checksum) or
  `cdc-sync retry` makes it pending (a write, and pending); one invalid order email must not
  cost every later cycle the derivation.

The checksum is taken before the read, so a change during the read makes the next one differ
(the safe side); a crash before the record leaves an older record whose state part no longer
matches. Never in a resync; not where the database computes no row numbers (SQLite,
CDC_SYNC_SOURCE_DIGESTS=off), which derive every time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

from cdc_sync.core.report import ResourceReport
from cdc_sync.core.resources import Resource
from cdc_sync.errors import MappingError, SourceError
from cdc_sync.source import ShopSource
from cdc_sync.state import meta_keys
from cdc_sync.state.meta_keys import MetaStore
from cdc_sync.state.per_resource import Settlement

log = logging.getLogger(__name__)

SKIPPABLE = frozenset({Resource.GUEST_CUSTOMERS})
"""Derived resources whose full read is skipped on an unchanged checksum (deleted products:
not yet; their derivation reads every order line)."""


class InputsState(MetaStore, Protocol):
    """What the check reads of state (`StateStore` is one): its record, a meta value; the
    resource's rows at a glance."""

    def settlement(self, resource: str) -> Settlement: ...


@dataclass(frozen=True)
class InputsCheck:
    """What was found before a full read: the text to record after it, and whether to skip."""

    resource: Resource
    inputs: str  # seed and checksum, taken before the read
    unchanged: bool
    seconds: float  # the checksum's time


class UnchangedInputs:
    """Decides whether a derived resource's full read can be skipped, and records after one."""

    def __init__(self, state: InputsState, source: ShopSource) -> None:
        self.state = state
        self.source = source

    def check(self, resource: Resource, seed: bytes | None) -> InputsCheck | None:
        """Before a full read (not a resync): None when the resource has no checksum."""
        if resource not in SKIPPABLE or seed is None:
            return None
        started = time.monotonic()
        try:
            checksum = self.source.inputs_checksum(resource)
        except (SourceError, MappingError) as exc:  # the derivation says so again, if it persists
            log.warning("%s: no checksum of its inputs, derived in full: %s", resource, exc)
            return None
        if checksum is None:
            return None
        inputs = f"{seed.hex()} {checksum}"
        seconds = time.monotonic() - started
        recorded = self.state.get_meta(meta_keys.derived_inputs(resource.value))
        settled = self._settled(resource)
        unchanged = settled is not None and recorded == f"{inputs} {settled}"
        return InputsCheck(resource, inputs, unchanged, seconds)

    def skipped(self, check: InputsCheck, rep: ResourceReport, live: int) -> None:
        """The full read not done: every live record counted as read and unchanged."""
        rep.counts.scanned += live
        rep.counts.unchanged += live
        rep.notes.append(f"not derived: the checksum of what it is derived from is unchanged "
                         f"since its last full derivation ({check.seconds:.2f} s)")
        log.info("%s: full read skipped, its inputs' checksum unchanged (%.2f s)",
                 check.resource, check.seconds)

    def record(self, check: InputsCheck | None) -> None:
        """After a complete full read (not a dry run): what it read, if every record is
        settled; else nothing, so that the next full read derives."""
        if check is None or check.unchanged:
            return
        name = meta_keys.derived_inputs(check.resource.value)
        settled = self._settled(check.resource)
        value = "" if settled is None else f"{check.inputs} {settled}"
        if self.state.get_meta(name) != value:
            self.state.set_meta(name, value)

    def _settled(self, resource: Resource) -> str | None:
        """State's rows of the resource as text, or None while any still needs an action."""
        found = self.state.settlement(resource.value)
        if found.unsettled:
            return None
        return f"{found.rows}@{found.last_write}"
