"""Records whose joined, child or watched rows changed: found by cursor, re-read whole.

An incremental cycle reads the rows whose own cursor moved; a record also changes when a row
it reads through a join, a child or raw SQL changes. Each tracked dependency (a `cursor:` on
a join or child, a `watch:` block) keeps its own high-water mark in state; one query per
tracker per cycle maps the rows changed since it to their parents' keys, and the engine
re-reads those parents whole. A mark is stored only after the cycle delivered what it found
(synced, rejected or left pending for the next cycle): at-least-once, like the resource's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from cdc_sync.core import freshness
from cdc_sync.core.catalogue import Catalogue
from cdc_sync.core.cursor import decode_high_water, encode_high_water
from cdc_sync.core.dependencies import dependency_map, sqlglot_dialect
from cdc_sync.core.resources import Resource
from cdc_sync.mapping.loader import LoadedMapping
from cdc_sync.source import ShopSource
from cdc_sync.source.changes import TrackerPlan
from cdc_sync.state import meta_keys
from cdc_sync.state.meta_keys import MetaStore


class Follower:
    """The tracked dependencies of one resource during one cycle."""

    def __init__(self, state: MetaStore, source: ShopSource, resource: Resource, *,
                 overlap_seconds: int, chunk_size: int) -> None:
        self.state = state
        self.source = source
        self.resource = resource
        self.overlap_seconds = overlap_seconds
        self.chunk_size = chunk_size
        self.trackers = source.tracking.trackers(resource)
        self._next: dict[str, str] = {}  # tracker name -> encoded mark, stored on commit
        self._marks: dict[str, str | None] = {}  # the stored marks, read once a cycle
        self._found: list[str] | None = None  # the keys the trackers found this cycle

    def start(self, *, full: bool) -> None:
        """Before reading: a tracker without a mark (and every one on a full read, which covers
        what came before) takes its table's largest cursor value as its next mark."""
        for tracker in self.trackers:
            if full or self._stored(tracker) is None:
                value = self.source.tracking.tracker_mark(tracker)
                if value is not None:
                    self._next[tracker.tracker.name] = encode_high_water(value)

    def changed_keys(self, seen: set[str]) -> Iterator[list[str]]:
        """Chunks of the keys of records whose tracked rows changed, except those in `seen`
        (read already this cycle); every key yielded is added to `seen`. The trackers' queries
        run at the first call of a cycle; a later one goes over the keys they found (the
        deleted products' pass asks for the orders' before the orders' own pass)."""
        if self._found is None:
            self._found = list(self._changed())
        chunk: list[str] = []
        for key in self._found:
            if key in seen:
                continue
            seen.add(key)
            chunk.append(key)
            if len(chunk) >= self.chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _changed(self) -> Iterator[str]:
        """Each key whose tracked rows changed since the trackers' marks, once; the highest
        value each tracker saw becomes its next mark."""
        found: set[str] = set()
        for tracker in self.trackers:
            stored = self._stored(tracker)
            if stored is None:
                continue  # new: its first mark is taken this cycle, reconciliation covers before
            overlap = 0 if tracker.append else self.overlap_seconds
            since = decode_high_water(stored, overlap_seconds=overlap)
            highest: Any = None
            for key, value in self.source.tracking.changed_parents(self.resource, tracker, since):
                if value is not None and (highest is None or value > highest):
                    highest = value
                if key not in found:
                    found.add(key)
                    yield key
            if highest is not None:
                self._next[tracker.tracker.name] = encode_high_water(highest)

    def commit(self) -> None:
        """After the cycle delivered what it found: store the new marks."""
        by_name = {t.tracker.name: t for t in self.trackers}
        for name, mark in self._next.items():
            if mark == self._marks.get(name):
                continue  # nothing appended or changed since: the stored mark stands
            self.state.set_meta(meta_keys.dependency_mark(self.resource.value, name),
                                json.dumps({**_identity(by_name[name]), "mark": mark}))
        self._next.clear()
        self._marks.clear()
        self._found = None

    def _stored(self, tracker: TrackerPlan) -> str | None:
        """The stored mark, if it belongs to this tracker's table, column and kind."""
        name = tracker.tracker.name
        if name not in self._marks:
            self._marks[name] = self._read(tracker)
        return self._marks[name]

    def _read(self, tracker: TrackerPlan) -> str | None:
        text = self.state.get_meta(meta_keys.dependency_mark(self.resource.value,
                                                             tracker.tracker.name))
        if not text:
            return None
        data = json.loads(text)
        mark = data.pop("mark", None)
        return mark if data == _identity(tracker) else None


def _identity(tracker: TrackerPlan) -> dict[str, Any]:
    """What a mark belongs to: an edited cursor or table starts over from a new mark."""
    spec = tracker.tracker
    return {"table": spec.table, "column": spec.cursor.column, "kind": spec.cursor.kind.value}


def detection_status(mapping: LoadedMapping, dialect: str | None,
                     state: MetaStore) -> dict[str, Any]:
    """What `status` shows of change detection: per resource each table, how its changes are
    seen, the worst delay and, for a followed one, the last change seen (its mark); the blind
    spots. `dialect` is the shop's SQLAlchemy dialect name (None: parse generic SQL)."""
    dependencies = dependency_map(Catalogue(mapping.spec), sqlglot_dialect(dialect or ""))
    minutes = mapping.spec.sync.full_reconcile_minutes
    resources = freshness.rows(dependencies, minutes)
    for resource, deps in resources.items():
        for dep in deps:
            if dep["tracker"] is not None:
                dep["last_change_seen"] = _mark(state, resource, dep["tracker"])
    blind = freshness.blind_spots(dependencies, mapping, minutes)
    return {"reconcile_minutes": minutes, "resources": resources,
            "warnings": [str(p) for p in blind]}


def _mark(state: MetaStore, resource: str, tracker: str) -> Any:
    text = state.get_meta(meta_keys.dependency_mark(resource, tracker))
    if not text:
        return None
    return decode_high_water(json.loads(text)["mark"], overlap_seconds=0)

