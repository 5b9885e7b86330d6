"""What the state DB remembers about each resource between cycles (its meta table).

- the cursor's high-water mark: an incremental read starts there, minus the overlap;
- when the last full read ended: derived resources are read fully every
  `sync.full_reconcile_minutes` (direct ones are reconciled in slices: reconcile.py);
- the fingerprint of the mapping last applied: an edit is noticed;
- a held mapping change: so that a held resource is not previewed again every cycle.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cdc_sync.core.catalogue import DERIVED, Catalogue
from cdc_sync.core.cursor import decode_high_water, encode_high_water
from cdc_sync.core.resources import Resource
from cdc_sync.mapping.loader import LoadedMapping
from cdc_sync.mapping.locations import Locations
from cdc_sync.mapping.model import MappingSpec
from cdc_sync.state import meta_keys
from cdc_sync.state.meta_keys import MetaStore


@dataclass(frozen=True)
class Held:
    """A mapping change that waits for `resync --confirm` / `sync --accept-mapping`."""

    fingerprint: str
    would_send: int


class ResourceMarks:
    """Reads and writes the per-resource meta values; knows nothing of records."""

    def __init__(
        self, state: MetaStore, mapping: LoadedMapping, clock: Callable[[], float],
        *, keep_holds: bool = False,
    ) -> None:
        self.state = state
        self.mapping = mapping
        self.catalogue = Catalogue(mapping.spec)
        self.clock = clock
        # True while a resource syncs on its last applied mapping because a change is held:
        # such a read must not release the hold.
        self.keep_holds = keep_holds
        self._cycle: dict[str, str] | None = None  # the meta values as a cycle began
        # Each mapping part's fingerprint, computed once: a cycle asks for each resource's
        # three times (its source seed, the mapping check, the marks' advance), and each part
        # is a dump and digest of the whole mapping (30 of them a cycle, 4-15 ms under load).
        self._parts: dict[str, str] = {}

    def begin_cycle(self, values: Mapping[str, str]) -> None:
        """Serve a cycle's reads of marks from `values` (every meta value, read in one query
        as it starts; the marks written since keep them current), not a query each: about 50
        a cycle for the six resources of a shop, high-water marks read three times each."""
        self._cycle = dict(values)

    def end_cycle(self) -> None:
        """Back to reading state (between cycles, marks may change: a resync, a hold)."""
        self._cycle = None

    def _get(self, name: str) -> str | None:
        if self._cycle is None:
            return self.state.get_meta(name)
        return self._cycle.get(name)

    def _set(self, name: str, value: str) -> None:
        self.state.set_meta(name, value)
        if self._cycle is not None:
            self._cycle[name] = value

    # -- incremental reads ------------------------------------------------------------------

    def cursor(self, resource: Resource) -> str | None:
        """The cursor column (derived resources follow the orders' cursor), or None."""
        return self.catalogue.cursor(resource)

    def full_due(self, resource: Resource) -> bool:
        """No cursor, no mark yet, a window of 0; a derived resource whose last full read is
        older than full_reconcile_minutes. Direct resources with a cursor are reconciled in
        slices instead (see reconcile.py)."""
        if (self.cursor(resource) is None
                or self._get(meta_keys.high_water(resource)) is None):
            return True
        every = self.mapping.spec.sync.full_reconcile_minutes * 60
        if every == 0:
            return True
        if resource not in DERIVED:  # a direct resource: rolling reconciliation
            return False
        last_full = self._get(meta_keys.last_full(resource))
        return last_full is None or self.clock() - float(last_full) >= every

    def since(self, resource: Resource) -> Any:
        """Where an incremental read starts: the high-water mark moved back by the overlap."""
        stored = self._get(meta_keys.high_water(resource))
        if stored is None:
            raise LookupError(f"{resource} has no high-water mark yet; read it fully first")
        return decode_high_water(
            stored, overlap_seconds=self.mapping.spec.sync.cursor_overlap_seconds
        )

    def advance(self, resource: Resource, high_water: Any, *, full: bool) -> None:
        """After a completed read: new mark, time of the full read, mapping applied."""
        if high_water is not None:
            self._update(meta_keys.high_water(resource), encode_high_water(high_water))
        if full:
            self._set(meta_keys.last_full(resource), repr(self.clock()))
        fingerprint = self.fingerprint(resource)
        applied = self._get(meta_keys.applied_mapping(resource))
        if applied != fingerprint or not self._get(meta_keys.applied_spec(resource)):
            spec = self.mapping.spec.model_dump(mode="json", by_alias=True)
            self._set(meta_keys.applied_spec(resource), json.dumps(
                {"fingerprint": self.mapping.fingerprint, "spec": spec}, sort_keys=True))
        if applied != fingerprint:
            self._set(meta_keys.applied_mapping(resource), fingerprint)
        if not self.keep_holds and self._get(meta_keys.held_change(resource)):
            self._set(meta_keys.held_change(resource), "")

    # -- source marks -----------------------------------------------------------------------

    def marked_under(self, resource: Resource, seed: bytes | None) -> bool:
        """Whether the resource's last complete full read marked its records under `seed`:
        only then can a digest-only read expect most marks to match (source/reads.py)."""
        return seed is not None and self._get(
            meta_keys.marks_seed(resource)) == seed.hex()

    def record_marks_seed(self, resource: Resource, seed: bytes | None) -> None:
        """After a complete full read (not a dry run): every record's mark is under `seed`."""
        if seed is not None:
            self._update(meta_keys.marks_seed(resource), seed.hex())

    def _update(self, name: str, value: str) -> None:
        # Most incremental cycles leave a mark where it was: a read costs less than a write
        # transaction (about 0.8 against 2 ms on SQLite on a busy machine), every resource,
        # every cycle.
        if self._get(name) != value:
            self._set(name, value)

    # -- mapping changes --------------------------------------------------------------------

    def fingerprint(self, resource: Resource) -> str:
        """The fingerprint of the mapping sections this resource's records come from."""
        return ",".join(self._part(n) for n in self.catalogue.mapping_parts(resource))

    def _part(self, name: str) -> str:
        found = self._parts.get(name)
        if found is None:
            found = self._parts[name] = self.mapping.resource_fingerprint(name)
        return found

    def mapping_changed(self, resource: Resource) -> bool:
        """Whether the mapping differs from the one the last completed read applied."""
        applied = self._get(meta_keys.applied_mapping(resource))
        return applied is not None and applied != self.fingerprint(resource)

    def applied(self, resource: Resource) -> LoadedMapping | None:
        """The mapping last applied to `resource`, as stored when it was applied; None when
        none was stored (applied by an older version) or it no longer matches its fingerprint."""
        stored = self._get(meta_keys.applied_spec(resource))
        if not stored:
            return None
        data = json.loads(stored)
        loaded = LoadedMapping(spec=MappingSpec.model_validate(data["spec"]),
                               path=self.mapping.path, fingerprint=data["fingerprint"],
                               locations=Locations())
        applied = ResourceMarks(self.state, loaded, self.clock).fingerprint(resource)
        same = applied == self._get(meta_keys.applied_mapping(resource))
        return loaded if same else None

    def held(self, resource: Resource) -> Held | None:
        """The hold recorded for the current mapping of `resource`, if any."""
        stored = self._get(meta_keys.held_change(resource))
        if not stored:
            return None
        held = Held(**json.loads(stored))
        return held if held.fingerprint == self.fingerprint(resource) else None

    def hold(self, resource: Resource, would_send: int) -> Held:
        held = Held(self.fingerprint(resource), would_send)
        self._set(meta_keys.held_change(resource), json.dumps(held.__dict__))
        return held


def held_changes(state: MetaStore) -> dict[Resource, int]:
    """Resources whose mapping change is held, with how many records it would resend."""
    found = {}
    for resource in Resource:
        stored = state.get_meta(meta_keys.held_change(resource))
        if stored:
            found[resource] = Held(**json.loads(stored)).would_send
    return found
