"""Changes in the tables a record reads: cursors on joins and children, and watches.

The part of `ShopSource` (`source.tracking`) that says which tables each resource's records
read and how their changes are seen (`check`, `status`), resolves each resource's trackers
once, and reads a tracker's first mark and the parents of its rows changed since a mark
(cycle/follow.py). The queries themselves are built in changes.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cdc_sync.core.dependencies import DependencyMap, dependency_map, sqlglot_dialect, trackers
from cdc_sync.core.freshness import Hint
from cdc_sync.core.resources import Resource
from cdc_sync.errors import MappingError, Problem
from cdc_sync.mapping.labels import key_string
from cdc_sync.source.changes import TrackerPlan, plan_trackers
from cdc_sync.source.connect import READ_FIX as _FIX
from cdc_sync.source.connect import reading
from cdc_sync.source.context import ShopContext
from cdc_sync.source.plan import ResourcePlan
from cdc_sync.source.stream import stream
from cdc_sync.source.suggest import hints

Tracked = tuple[list[TrackerPlan], list[Problem]]


class Tracking:
    """The tracked dependencies of a mapping's resources, read through the shop's engine."""

    def __init__(self, shop: ShopContext) -> None:
        self._shop = shop
        self._tracked: dict[Resource, Tracked] = {}

    def dependencies(self) -> DependencyMap:
        """Every table each resource's records read, and how its changes are seen."""
        return dependency_map(self._shop.catalogue, sqlglot_dialect(self._shop.schema.dialect))

    def hints(self, dependencies: DependencyMap) -> dict[str, Hint]:
        """What the schema suggests for the tables seen only by reconciliation (`check`)."""
        keys: dict[Resource, list[str]] = {}
        own: dict[Resource, str | None] = {}
        for entry in self._shop.catalogue:
            plan, _ = (self._shop.plan(entry.resource.value) if entry.spec is not None
                       else (None, []))
            if plan is not None and entry.spec is not None:
                keys[entry.resource], own[entry.resource] = list(plan.key_names), entry.spec.table
        with reading("reading the schema for cursor suggestions", _FIX, self._shop.engine):
            return hints(dependencies, self._shop.schema.table, keys, own)

    def trackers(self, resource: Resource) -> list[TrackerPlan]:
        """The resource's joins, children and watches with a cursor, resolved (direct only)."""
        if self._shop.catalogue.spec(resource) is None:
            return []
        planned, problems = self.planned(resource, self._shop.plan_or_raise(resource.value))
        if problems:
            raise MappingError(problems, title=f"{resource.value} cannot be followed as mapped")
        return planned

    def tracker_mark(self, tracker: TrackerPlan) -> Any:
        """The largest cursor value of the tracked table now (its first high-water mark)."""
        with reading(f"reading the cursor of {tracker.tracker.name}", _FIX, self._shop.engine), \
                self._shop.engine.connect() as conn:
            return conn.execute(tracker.mark_select()).scalar()

    def changed_parents(self, resource: Resource, tracker: TrackerPlan,
                        since: Any) -> Iterator[tuple[str, Any]]:
        """(parent key, cursor value) of each tracked row changed since the mark, streamed."""
        width = len(tracker.parent_key)
        rows = stream(self._shop.engine, tracker.changed_select(since), batch=self._shop.batch,
                      doing=f"reading changes of {resource.value}.{tracker.tracker.name}")
        try:
            for row in rows.rows:
                yield key_string(list(row[:width])), row[width]
        finally:
            rows.close()

    def planned(self, resource: Resource, plan: ResourcePlan) -> Tracked:
        """The resource's trackers resolved against the schema, with the problems of those
        that do not resolve (`check` reports them); once per resource."""
        if resource not in self._tracked:
            spec = self._shop.catalogue.spec(resource)
            assert spec is not None
            with reading(f"reading the schema for {resource.value}'s cursors", _FIX,
                         self._shop.engine):
                self._tracked[resource] = plan_trackers(
                    self._shop.schema, self._shop.mapping, plan, list(trackers(spec)))
        return self._tracked[resource]
