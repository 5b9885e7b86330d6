"""Every table a record reads from, and how a change in it is seen (pure).

A record depends on its resource's table (or the tables its `query` reads), its `joins`, each
child (and the child's joins), the tables named inside raw SQL (`expression`, child `query`,
`where` subqueries) and, for a derived resource, its bases' tables. Raw SQL is parsed with
sqlglot in the shop's dialect, never with regexes.

How each table's changes are seen:
- the resource's `cursor` (a changed row is read in the next incremental cycle);
- a `cursor:` on a join or a child, or a `watch:` block: the changed rows name the records
  they belong to, which are re-read whole in the next incremental cycle (`Tracker`);
- nothing: only reconciliation (`sync.full_reconcile_minutes`) sees the change;
- a resource without a cursor is read whole every cycle, so every change arrives then.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from cdc_sync.core.catalogue import Catalogue, Entry
from cdc_sync.core.guests import SETTLED_LATER
from cdc_sync.core.resources import Resource
from cdc_sync.mapping.model import ChildSpec, FieldSpec, ResourceSpec
from cdc_sync.mapping.related import CursorKind, CursorSpec, JoinSpec, WatchSpec

Path = tuple[str | int, ...]

# SQLAlchemy's dialect names -> sqlglot's.
_DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}


class Seen(StrEnum):
    """How a change in a dependency table reaches Metrilo."""

    CURSOR = "cursor"  # a timestamp column: the next incremental cycle
    APPEND = "append key"  # an only-growing key: the next incremental cycle
    WATCHED = "watched"  # a watch: block: the next incremental cycle
    EVERY_CYCLE = "read every cycle"  # the resource has no cursor: read whole each cycle
    RECONCILIATION = "reconciliation only"  # within sync.full_reconcile_minutes


@dataclass(frozen=True)
class Tracker:
    """A join, child or watch whose cursor shows changed rows, mapped to the parent records.

    `name` is stable while the mapping keeps it (the state remembers its mark under it).
    """

    name: str
    path: Path
    table: str | None
    cursor: CursorSpec


@dataclass(frozen=True)
class Dependency:
    """One table one resource's records read from, through one part of the mapping."""

    resource: Resource
    table: str
    via: str  # what reads it: "table", "joins.c", "children.products", "fields.x.expression"...
    path: Path  # the YAML path of that part
    raw_sql: bool
    seen: Seen
    cursor: CursorSpec | None = None  # the column that shows its changes, if any
    tracker: str | None = None  # the Tracker that follows it, if any
    # The changes its cursor does not bring in the next cycle, which reconciliation settles
    # (guests: what the changed orders alone cannot tell, core/guests.SETTLED_LATER).
    later: str | None = None

    def how(self) -> str:
        """`cursor updated_at`, `append key id`, `watched (watch.0: cursor changed)`, ..."""
        if self.seen is Seen.WATCHED and self.cursor is not None and self.tracker is not None:
            return f"watched ({self.tracker}: {_cursor_text(self.cursor)})"
        if self.cursor is not None:
            return _cursor_text(self.cursor)
        return self.seen.value

    @property
    def blind(self) -> bool:
        """Raw SQL reads it and nothing shows its changes before reconciliation: warn."""
        return self.raw_sql and self.seen is Seen.RECONCILIATION


@dataclass(frozen=True)
class Unparsed:
    """Raw SQL whose tables could not be found (the parser did not understand it)."""

    resource: Resource
    path: Path
    error: str


def _cursor_text(cursor: CursorSpec) -> str:
    kind = "append key" if cursor.kind is CursorKind.APPEND else "cursor"
    return f"{kind} {cursor.column}"


def sqlglot_dialect(sqlalchemy_dialect: str) -> str | None:
    return _DIALECTS.get(sqlalchemy_dialect)


def table_name(name: str) -> str:
    """How tables are compared: lower case, without quotes (`Shop.Orders` -> shop.orders)."""
    return ".".join(part.strip('"`[]').lower() for part in name.split("."))


# -- raw SQL ----------------------------------------------------------------------------------


def sql_tables(sql: str, dialect: str | None) -> list[str]:
    """The tables a SELECT reads (subqueries included, CTE names left out), in order.

    Raises SqlglotError when the parser cannot read it.
    """
    tree = sqlglot.parse_one(sql, read=dialect)
    ctes = {table_name(c.alias_or_name) for c in tree.find_all(exp.CTE)}
    found: dict[str, None] = {}
    for table in tree.find_all(exp.Table):
        if not table.name:
            continue
        name = table_name(".".join(p for p in (table.db, table.name) if p))
        if name not in ctes:
            found[name] = None
    return list(found)


def cursor_table(sql: str, column: str, dialect: str | None) -> str | None:
    """The table whose column a query's output column `column` is (`p.modified AS modified`)."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except SqlglotError:
        return None
    if not isinstance(tree, exp.Select):
        return None
    aliases = {table_name(t.alias_or_name): table_name(".".join(p for p in (t.db, t.name) if p))
               for t in tree.find_all(exp.Table)}
    for projection in tree.selects:
        if table_name(projection.alias_or_name) != table_name(column):
            continue
        inner = projection.unalias()
        if isinstance(inner, exp.Column):
            qualifier = table_name(inner.table) if inner.table else None
            if qualifier is not None:
                return aliases.get(qualifier)
            return next(iter(aliases.values())) if len(aliases) == 1 else None
    return None


# -- one resource -----------------------------------------------------------------------------


@dataclass
class _Collector:
    """Collects one resource's dependencies while walking its mapping block."""

    resource: Resource
    spec: ResourceSpec
    dialect: str | None
    every_cycle: bool
    found: list[Dependency]
    unparsed: list[Unparsed]

    def add(self, table: str, via: str, path: Path, *, raw: bool,
            cursor: CursorSpec | None = None, tracker: str | None = None) -> None:
        name = table_name(table)
        watch = self.watch_for(name) if cursor is None else None
        if watch is not None:
            cursor, tracker = watch.cursor, f"watch.{self.spec.watch.index(watch)}"
        seen = _seen(cursor, watch is not None, self.every_cycle)
        self.found.append(Dependency(self.resource, name, via, path, raw, seen, cursor, tracker))

    def watch_for(self, table: str) -> WatchSpec | None:
        for watch in self.spec.watch:
            if watch.table is not None and table_name(watch.table) == table:
                return watch
            if watch.query is not None and \
                    cursor_table(watch.query, watch.cursor.column, self.dialect) == table:
                return watch
        return None

    def raw(self, sql: str, via: str, path: Path, *, wrap: str = "{}",
            cursor: CursorSpec | None = None, tracker: str | None = None,
            skip: frozenset[str] = frozenset()) -> None:
        """Every table raw SQL names; `cursor` covers the table its column comes from."""
        text = wrap.format(sql)
        try:
            tables = sql_tables(text, self.dialect)
        except SqlglotError as error:
            self.unparsed.append(Unparsed(self.resource, path, str(error).splitlines()[0]))
            return
        covered = cursor_table(text, cursor.column, self.dialect) if cursor else None
        for table in tables:
            if table in skip:
                continue
            mine = cursor if table == covered else None
            self.add(table, via, path, raw=True, cursor=mine, tracker=tracker if mine else None)


def _seen(cursor: CursorSpec | None, watched: bool, every_cycle: bool) -> Seen:
    if every_cycle:
        return Seen.EVERY_CYCLE
    if cursor is None:
        return Seen.RECONCILIATION
    if watched:
        return Seen.WATCHED
    return Seen.APPEND if cursor.kind is CursorKind.APPEND else Seen.CURSOR


def resource_dependencies(resource: Resource, spec: ResourceSpec,
                          dialect: str | None) -> tuple[list[Dependency], list[Unparsed]]:
    """Every table a direct resource's records read, with how its changes are seen."""
    name = resource.value
    collect = _Collector(resource, spec, dialect, spec.cursor is None, [], [])
    own = CursorSpec(column=spec.cursor) if spec.cursor is not None else None
    if spec.table is not None:
        collect.add(spec.table, "table", (name, "table"), raw=False, cursor=own)
        mine = frozenset({table_name(spec.table)})
    else:
        assert spec.query is not None  # the model guarantees one of table or query
        collect.raw(spec.query, "query", (name, "query"), cursor=own)
        mine = frozenset()
    _joins(collect, spec.joins, (name,), "")
    _sql_parts(collect, (name,), "", spec.where, spec.fields, mine)
    for child_name, child in spec.children.items():
        _child(collect, (name, "children", child_name), f"children.{child_name}", child)
    return collect.found, collect.unparsed


def _joins(collect: _Collector, joins: list[JoinSpec], path: Path, prefix: str) -> None:
    for index, join in enumerate(joins):
        tracker = f"{prefix}joins.{join.alias}" if join.cursor is not None else None
        collect.add(join.table, f"{prefix}joins.{join.alias}", (*path, "joins", index),
                    raw=False, cursor=join.cursor, tracker=tracker)


def _sql_parts(collect: _Collector, path: Path, prefix: str, where: str | None,
               fields: dict[str, FieldSpec], mine: frozenset[str]) -> None:
    """Tables inside `where` and `expression` SQL (their own table is already counted)."""
    if where is not None:
        collect.raw(where, f"{prefix}where", (*path, "where"), wrap="SELECT 1 WHERE {}", skip=mine)
    for field_name, field in fields.items():
        if field.expression is not None:
            collect.raw(field.expression, f"{prefix}fields.{field_name}.expression",
                        (*path, "fields", field_name, "expression"), wrap="SELECT {}", skip=mine)


def _child(collect: _Collector, path: Path, via: str, child: ChildSpec) -> None:
    tracker = via if child.cursor is not None else None
    if child.table is not None:
        collect.add(child.table, via, (*path, "table"), raw=False, cursor=child.cursor,
                    tracker=tracker)
        mine = frozenset({table_name(child.table)})
    else:
        assert child.query is not None
        collect.raw(child.query, via, (*path, "query"), cursor=child.cursor, tracker=tracker)
        mine = frozenset()
    _joins(collect, child.joins, path, f"{via}.")
    fields = dict(child.fields or {})
    if child.value is not None:
        fields["value"] = child.value
    _sql_parts(collect, path, f"{via}.", child.where, fields, mine)


def trackers(spec: ResourceSpec) -> Iterator[Tracker]:
    """The joins, children and watches of a direct resource that have a cursor."""
    for index, join in enumerate(spec.joins):
        if join.cursor is not None:
            yield Tracker(f"joins.{join.alias}", ("joins", index), join.table, join.cursor)
    for name, child in spec.children.items():
        if child.cursor is not None:
            yield Tracker(f"children.{name}", ("children", name), child.table, child.cursor)
        for index, join in enumerate(child.joins):
            if join.cursor is not None:
                yield Tracker(f"children.{name}.joins.{join.alias}",
                              ("children", name, "joins", index), join.table, join.cursor)
    for index, watch in enumerate(spec.watch):
        yield Tracker(f"watch.{index}", ("watch", index), watch.table, watch.cursor)


# -- the whole mapping ------------------------------------------------------------------------


@dataclass(frozen=True)
class DependencyMap:
    """Per resource of the mapping (import order), the tables its records read."""

    by_resource: dict[Resource, list[Dependency]]
    unparsed: list[Unparsed]

    def blind(self) -> list[Dependency]:
        return [d for deps in self.by_resource.values() for d in deps if d.blind]

    def idle(self) -> list[Dependency]:
        """Joins, children and watches with a cursor of a resource read whole every cycle."""
        return [d for deps in self.by_resource.values() for d in deps
                if d.tracker is not None and d.seen is Seen.EVERY_CYCLE]


def dependency_map(catalogue: Catalogue, dialect: str | None) -> DependencyMap:
    """Every resource's dependencies; `dialect` is sqlglot's name (see `sqlglot_dialect`)."""
    by_resource: dict[Resource, list[Dependency]] = {}
    unparsed: list[Unparsed] = []
    for entry in catalogue:
        if entry.spec is not None:
            found, bad = resource_dependencies(entry.resource, entry.spec, dialect)
            by_resource[entry.resource], unparsed = found, [*unparsed, *bad]
    for entry in catalogue:
        if entry.derived:
            by_resource[entry.resource] = _derived(entry, by_resource)
    return DependencyMap({e.resource: by_resource[e.resource] for e in catalogue}, unparsed)


def _derived(entry: Entry, direct: dict[Resource, list[Dependency]]) -> list[Dependency]:
    """A derived resource reads its bases' rows (and joins; deleted products the order lines).

    It follows the cursor of the resource it is derived from (orders): an incremental read
    derives from the rows whose own cursor moved, so its other tables are seen by
    reconciliation; so are the guests' cases the changed orders alone cannot tell. Deleted
    products also derive from the orders re-read for a followed join, child or watch
    (cycle/deleted.py): those tables are seen as the orders see them.
    """
    found = []
    for base in entry.built_from:
        for dep in direct.get(base, []):
            if not _derived_reads(entry.resource, dep.via):
                continue
            follows = base is entry.cursor_of and (
                dep.via in ("table", "query")
                or (entry.resource is Resource.DELETED_PRODUCTS and dep.tracker is not None))
            seen = dep.seen if follows or dep.seen is Seen.EVERY_CYCLE else Seen.RECONCILIATION
            later = (SETTLED_LATER if follows and entry.resource is Resource.GUEST_CUSTOMERS
                     and seen is not Seen.EVERY_CYCLE else None)
            # No tracker of its own: the orders' marks are the ones that move.
            found.append(Dependency(entry.resource, dep.table, f"{base.value}.{dep.via}",
                                    dep.path, False, seen, dep.cursor if follows else None,
                                    later=later))
    return found


def _derived_reads(resource: Resource, via: str) -> bool:
    """Whether the derived resource reads this part of a base (guests read no children)."""
    if not via.startswith("children."):
        return True
    return resource is Resource.DELETED_PRODUCTS and via.split(".")[1] == "products"
