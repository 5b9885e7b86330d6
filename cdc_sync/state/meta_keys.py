"""Every name of a value in the state DB's meta table, spelled once.

The meta table is one namespace shared by the per-resource marks (`marks`), the resync
hand-over (`resync`) and the daemon's refused mapping edits (`daemon.mapping_meta`); keeping
the names together shows they cannot collide (`mapping:problems` is not a resource's name).
Renaming one loses what existing state DBs remember under the old name.
"""

from __future__ import annotations

from typing import Protocol


class MetaStore(Protocol):
    """What a reader or writer of meta values needs of state (`StateStore` is one)."""

    def get_meta(self, name: str) -> str | None: ...
    def set_meta(self, name: str, value: str) -> None: ...

RESYNC_ACTIVE = "resync:active"
"""The resources of a full resync still under way (a JSON list), so an interrupted one resumes."""

MAPPING_PROBLEMS = "mapping:problems"
"""Why the daemon refused the last edit of mappings.yaml (JSON), until a good one loads."""


def high_water(resource: str) -> str:
    """The encoded high-water mark of the resource's cursor column."""
    return f"high_water:{resource}"


def last_full(resource: str) -> str:
    """When the resource was last read in full (epoch seconds)."""
    return f"last_full:{resource}"


def marks_seed(resource: str) -> str:
    """The source seed (hex) under which the resource's last complete full read marked its
    records: digests are compared on a full read or a slice only under the same seed (after a
    mapping change or an upgrade every mark differs, and a values read is cheaper than a
    digest read that re-reads every row by key)."""
    return f"marks_seed:{resource}"


def derived_inputs(resource: str) -> str:
    """What a derived resource's last complete, settled full derivation read (its seed, the
    checksum of its inputs taken before the read, and state's rows of it after): while all of
    it is unchanged, the next full read would find nothing to do (cycle/inputs.py)."""
    return f"derived_inputs:{resource}"


def applied_mapping(resource: str) -> str:
    """The fingerprint of the resource's mapping that state reflects."""
    return f"mapping:{resource}"


def applied_spec(resource: str) -> str:
    """The whole mapping (JSON: fingerprint and spec) last applied to the resource, to keep
    syncing it on while a change of its mapping is held."""
    return f"mapping_spec:{resource}"


def held_change(resource: str) -> str:
    """A mapping change waiting for confirmation (JSON), or empty."""
    return f"held:{resource}"


def reconcile_window(resource: str) -> str:
    """The rolling reconciliation's current window (JSON: start, slice position, counts)."""
    return f"reconcile:{resource}"


def dependency_mark(resource: str, tracker: str) -> str:
    """The high-water mark (JSON, with the table and column it belongs to) of one tracked
    join, child or watch of the resource (`dependencies.Tracker.name`)."""
    return f"dependency:{resource}:{tracker}"
