"""Changed rows of a join, child or watched table, mapped to the records they belong to.

Each `Tracker` (a `cursor:` on a join or a child, or a `watch:` block) becomes one SELECT of
(parent key..., cursor value) over the rows whose cursor moved past a mark: one query per
tracker per cycle, streamed, so the engine re-reads those parents whole. Its high-water mark
is the largest cursor value the query returned; a tracker's first mark is its table's MAX.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from cdc_sync.core.dependencies import Tracker
from cdc_sync.errors import Problem, QueryFailed
from cdc_sync.mapping.loader import LoadedMapping
from cdc_sync.mapping.related import CursorKind, WatchSpec
from cdc_sync.source.plan import ChildPlan, Column, ResourcePlan
from cdc_sync.source.reflect import Relation, ShopSchema

if TYPE_CHECKING:
    from cdc_sync.source.query import AnySelect


@dataclass(frozen=True)
class TrackerPlan:
    """A tracker resolved against the schema: where its rows are, their parent key, cursor."""

    tracker: Tracker
    from_clause: sa.FromClause
    parent_key: tuple[Column, ...]
    cursor: Column
    where: sa.TextClause | None = None

    @property
    def append(self) -> bool:
        return self.tracker.cursor.kind is CursorKind.APPEND

    def changed_select(self, since: Any) -> AnySelect:
        """(parent key..., cursor) of every row changed since the mark (append: after it)."""
        moved = self.cursor > since if self.append else self.cursor >= since
        stmt = sa.select(*self.parent_key, self.cursor).select_from(self.from_clause)
        stmt = stmt.where(moved, *(c.is_not(None) for c in self.parent_key))
        return stmt.where(self.where) if self.where is not None else stmt

    def mark_select(self) -> AnySelect:
        """MAX(cursor): the first mark, taken before the read that covers what came before."""
        return sa.select(sa.func.max(self.cursor)).select_from(self.from_clause)


@dataclass
class _Resolver:
    schema: ShopSchema
    mapping: LoadedMapping
    plan: ResourcePlan
    problems: list[Problem]

    def problem(self, path: tuple[str | int, ...], what: str, fix: str) -> None:
        self.problems.append(Problem(self.mapping.where(self.plan.name, *path), what, fix))

    def column(self, relation: Relation, name: str, path: tuple[str | int, ...],
               what: str) -> Column | None:
        found = relation.column(name)
        if found is None:
            self.problem(path, f"{what} {name!r} is not a column of {relation.label!r}",
                         relation.column_fix(name))
        return found


def plan_trackers(schema: ShopSchema, mapping: LoadedMapping, plan: ResourcePlan,
                  trackers: list[Tracker]) -> tuple[list[TrackerPlan], list[Problem]]:
    """Each tracker of a resource as a TrackerPlan, or the problems that prevent it."""
    resolver = _Resolver(schema, mapping, plan, [])
    planned = []
    for tracker in trackers:
        found = _plan_one(resolver, tracker)
        if found is not None:
            planned.append(found)
    return planned, resolver.problems


def _plan_one(resolver: _Resolver, tracker: Tracker) -> TrackerPlan | None:
    kind, _, rest = tracker.name.partition(".")
    if kind == "joins":
        return _join(resolver, tracker, resolver.plan.joins, resolver.plan.from_clause,
                     resolver.plan.key, resolver.plan.where)
    if kind == "children":
        child_name, _, join = rest.partition(".joins.")
        child = _child(resolver.plan, child_name)
        if child is None:
            return None  # the child's own problems are reported with it
        if join:
            return _join(resolver, tracker, child.joins, child.from_clause, child.parent_key, None)
        cursor = resolver.column(child.relation, tracker.cursor.column,
                                 (*tracker.path, "cursor"), "cursor column")
        if cursor is None:
            return None
        return TrackerPlan(tracker, child.from_clause, child.parent_key, cursor)
    return _watch(resolver, tracker, resolver.plan.spec.watch[int(rest)])


def _child(plan: ResourcePlan, name: str) -> ChildPlan | None:
    """A child sent as a field, or one read only for aggregate fields (`sum: payments.x`)."""
    if name in plan.children:
        return plan.children[name]
    return next((a.child for a in plan.aggregates.values() if a.child.name == name), None)


def _join(resolver: _Resolver, tracker: Tracker, joins: Mapping[str, Relation],
          from_clause: sa.FromClause, parent_key: tuple[Column, ...],
          where: sa.TextClause | None) -> TrackerPlan | None:
    alias = tracker.name.rsplit(".", 1)[1]
    joined = joins.get(alias)
    if joined is None:
        return None  # the join's own problems are reported with it
    cursor = resolver.column(joined, tracker.cursor.column, (*tracker.path, "cursor"),
                             "cursor column")
    if cursor is None:
        return None
    return TrackerPlan(tracker, from_clause, parent_key, cursor, where)


def _watch(resolver: _Resolver, tracker: Tracker, watch: WatchSpec) -> TrackerPlan | None:
    path = tracker.path
    if watch.query is not None:
        try:
            relation = resolver.schema.query(watch.query, f"cdc_watch_{path[-1]}")
        except QueryFailed as exc:
            resolver.problem((*path, "query"), f"the query fails: {exc}",
                             "run it in a SQL console and correct it (it must be one SELECT)")
            return None
    else:
        assert watch.table is not None  # the model guarantees one of table or query
        found = resolver.schema.table(watch.table)
        if found is None:
            close = resolver.schema.suggest(watch.table)
            hint = f"did you mean {close!r}? " if close else ""
            resolver.problem((*path, "table"),
                             f"table {watch.table!r} does not exist in the shop database",
                             f"{hint}give the table the raw SQL reads (schema.table for "
                             "another schema)")
            return None
        relation = found
    width = len(resolver.plan.key)
    if len(watch.parent_key) != width:
        resolver.problem((*path, "parent_key"),
                         f"parent_key has {len(watch.parent_key)} column(s) but the key has "
                         f"{width}", "list one column per key column, in the key's order")
        return None
    cursor = resolver.column(relation, watch.cursor.column, (*path, "cursor"), "cursor column")
    keys = [_key_part(resolver, relation, name, watch, (*path, "parent_key"))
            for name in watch.parent_key]
    if cursor is None or any(k is None for k in keys):
        return None
    return TrackerPlan(tracker, relation.from_clause, tuple(k for k in keys if k is not None),
                       cursor)


def _key_part(resolver: _Resolver, relation: Relation, name: str, watch: WatchSpec,
              path: tuple[str | int, ...]) -> Column | None:
    """A column of the watched rows or, on a table, an SQL expression over its columns."""
    found = relation.column(name)
    if found is not None or watch.query is not None:
        return found if found is not None else resolver.column(relation, name, path, "column")
    return sa.literal_column(f"({name})")
