"""Resolve a mapping's resource against the reflected schema: every name checked, none trusted.

A plan holds SQLAlchemy objects for everything a resource reads (its table or query, joins,
key, cursor, the labelled values compose needs, its children), so SELECTs are built from
reflected columns and quoted by SQLAlchemy. Problems (unknown table, column, alias, template
placeholder; key shape) are collected, each with its YAML location and a fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from cdc_sync.errors import Problem, QueryFailed
from cdc_sync.mapping.labels import aggregate_stream, expression_label, template_placeholders
from cdc_sync.mapping.loader import LoadedMapping
from cdc_sync.mapping.model import AggregateFunction, ChildSpec, FieldSpec, ResourceSpec
from cdc_sync.mapping.related import JoinSpec
from cdc_sync.source.keys import KeyKind, key_kinds
from cdc_sync.source.reflect import Relation, ShopSchema
from cdc_sync.source.sums import exact_sum

Path = tuple[str | int, ...]
Column = sa.ColumnElement[Any]


@dataclass(frozen=True)
class ChildPlan:
    """One child collection: its rows, the columns naming the parent, the values it reads."""

    name: str
    spec: ChildSpec
    relation: Relation
    parent_key: tuple[Column, ...]
    values: dict[str, Column]
    order_by: tuple[Column, ...]
    where: sa.TextClause | None
    from_clause: sa.FromClause  # the child's rows LEFT JOINed to its joins
    joins: dict[str, Relation] = field(default_factory=dict)


@dataclass(frozen=True)
class AggregatePlan:
    """A resource's aggregate fields over one child: one grouped query, a row per parent."""

    child: ChildPlan
    values: dict[str, Column]  # expression_label(field) -> SUM(...), COUNT(...), ...
    columns: dict[str, Column | None]  # the same labels -> the child column folded (None: rows)


@dataclass(frozen=True)
class ResourcePlan:
    """One resource: rows (base LEFT JOIN joins, filtered), key, cursor, values, children."""

    name: str
    spec: ResourceSpec
    relation: Relation
    from_clause: sa.FromClause
    key_names: tuple[str, ...]
    key: tuple[Column, ...]
    cursor: Column | None
    values: dict[str, Column]
    where: sa.TextClause | None
    children: dict[str, ChildPlan]
    kinds: tuple[KeyKind, ...]
    joins: dict[str, Relation] = field(default_factory=dict)
    aggregates: dict[str, AggregatePlan] = field(default_factory=dict)  # by aggregate_stream


@dataclass
class _Resolver:
    """Collects problems while resolving names within one resource."""

    schema: ShopSchema
    mapping: LoadedMapping
    problems: list[Problem] = field(default_factory=list)

    def problem(self, path: Path, what: str, fix: str) -> None:
        self.problems.append(Problem(self.mapping.where(*path), what, fix))

    def relation(self, path: Path, table: str | None, query: str | None,
                 name: str) -> Relation | None:
        if query is not None:
            try:
                return self.schema.query(query, name)
            except QueryFailed as exc:
                self.problem((*path, "query"), f"the query fails: {exc}",
                             "run it in a SQL console and correct it (it must be one SELECT)")
                return None
        assert table is not None  # the model guarantees one of table or query
        found = self.schema.table(table)
        if found is None:
            close = self.schema.suggest(table)
            hint = f"did you mean {close!r}? " if close else ""
            self.problem((*path, "table"), f"table {table!r} does not exist in the shop database",
                         f"{hint}give an existing table (schema.table for another schema)")
        return found

    def column(self, path: Path, name: str, base: Relation,
               joins: Mapping[str, Relation], what: str = "column") -> Column | None:
        alias, dot, bare = name.rpartition(".")
        if dot and alias in joins:
            return self._in(path, bare, joins[alias], f"join {alias!r}", what)
        if dot and base.column(name) is None:
            known = ", ".join(joins) or "none"
            self.problem(path, f"{what} {name!r} names join alias {alias!r}, which is not defined",
                         f"add a join with alias: {alias} (defined aliases: {known})")
            return None
        return self._in(path, name, base, repr(base.label), what)

    def joined_column(self, path: Path, name: str, join: JoinSpec,
                      aliased: Relation) -> Column | None:
        return self._in(path, name, aliased, f"join {join.alias!r} ({join.table})", "column")

    def _in(self, path: Path, name: str, relation: Relation, owner: str,
            what: str) -> Column | None:
        found = relation.column(name)
        if found is None:
            self.problem(path, f"{what} {name!r} is not a column of {owner}",
                         relation.column_fix(name))
        return found

    def values(self, path: Path, fields: Mapping[str, FieldSpec], base: Relation,
               joins: Mapping[str, Relation]) -> dict[str, Column]:
        """Every labelled value the fields read: columns by name, expressions as expr:<field>."""
        out: dict[str, Column] = {}
        for name, spec in fields.items():
            self.field_values(out, (*path, name), name, spec, base, joins)
        return out

    def field_values(self, out: dict[str, Column], path: Path, name: str, spec: FieldSpec,
                     base: Relation, joins: Mapping[str, Relation]) -> None:
        if spec.column is not None:
            self._add(out, spec.column, self.column((*path, "column"), spec.column, base, joins))
        elif spec.template is not None:
            for placeholder in _placeholders(spec.template):
                found = self.column((*path, "template"), placeholder, base, joins,
                                    what="template placeholder")
                self._add(out, placeholder, found)
        elif spec.expression is not None:
            out[expression_label(name)] = sa.literal_column(f"({spec.expression})")

    @staticmethod
    def _add(out: dict[str, Column], label: str, column: Column | None) -> None:
        if column is not None:
            out[label] = column


def resolve_fields(schema: ShopSchema, mapping: LoadedMapping, path: Path,
                   fields: Mapping[str, FieldSpec], base: Relation,
                   joins: Mapping[str, Relation]) -> tuple[dict[str, Column], list[Problem]]:
    """The labelled values `fields` read from `base` (and its joins), with any problems."""
    resolver = _Resolver(schema, mapping)
    return resolver.values(path, fields, base, joins), resolver.problems


def _placeholders(template: str) -> list[str]:
    try:
        return template_placeholders(template)
    except ValueError:
        return []  # the loader reports malformed templates


def plan_resource(schema: ShopSchema, mapping: LoadedMapping, name: str,
                  spec: ResourceSpec) -> tuple[ResourcePlan | None, list[Problem]]:
    """The plan for resource `name` with its problems; None when nothing can be read.

    With problems, the plan is partial (children and joins that failed are left out) so
    `check` goes on testing the rest: a failing child query must not hide a failing
    expression. Only a plan without problems may read (ShopSource refuses the others).
    """
    resolver = _Resolver(schema, mapping)
    path: Path = (name,)
    base = resolver.relation(path, spec.table, spec.query, "src")
    if base is None:
        return None, resolver.problems
    joins, from_clause = _joins(resolver, path, base, spec.joins)
    key_names = tuple(spec.key or base.primary_key)
    if not key_names:
        resolver.problem((*path, "table"), f"table {base.label!r} has no primary key",
                         "set key: to the column(s) that identify one row")
    key = [resolver.column((*path, "key"), k, base, {}) for k in key_names]
    cursor = None
    if spec.cursor is not None:
        cursor = resolver.column((*path, "cursor"), spec.cursor, base, {}, what="cursor column")
    values = resolver.values((*path, "fields"), spec.fields, base, joins)
    children = {
        child_name: _child(resolver, (*path, "children", child_name), child_name, child, len(key))
        for child_name, child in spec.children.items()
    }
    ready = {n: c for n, c in children.items() if c is not None}
    aggregates = _aggregates(resolver, path, spec, ready)
    if any(c is None for c in key):
        return None, resolver.problems
    key_columns = tuple(c for c in key if c is not None)
    for label, column in zip(key_names, key_columns, strict=True):
        values.setdefault(label, column)
    sides = [[c.type for c in key_columns]]
    sides += [[c.type for c in child.parent_key] for child in ready.values()]
    plan = ResourcePlan(
        name=name, spec=spec, relation=base, from_clause=from_clause,
        key_names=key_names, key=key_columns, cursor=cursor, values=values,
        where=sa.text(spec.where) if spec.where else None,
        children={n: c for n, c in ready.items() if c.spec.sent},
        kinds=key_kinds(sides), joins=joins, aggregates=aggregates,
    )
    return plan, resolver.problems


def _aggregates(resolver: _Resolver, path: Path, spec: ResourceSpec,
                children: Mapping[str, ChildPlan]) -> dict[str, AggregatePlan]:
    """The aggregate fields grouped by the child they fold, each child's as one plan."""
    values: dict[str, dict[str, Column]] = {}
    columns: dict[str, dict[str, Column | None]] = {}
    for field_name, field_spec in spec.fields.items():
        aggregate = field_spec.aggregate()
        if aggregate is None:
            continue
        where: Path = (*path, "fields", field_name, aggregate.function.value)
        child = children.get(aggregate.child)
        if child is None:
            if aggregate.child not in spec.children:
                resolver.problem(where, f"{aggregate.function}: names the child "
                                 f"{aggregate.child!r}, which {path[0]} does not have",
                                 f"add children.{aggregate.child} (table:, parent_key:)")
            continue  # else the child's own problems are reported
        column = None
        if aggregate.column is not None:
            column = resolver.column(where, aggregate.column, child.relation, child.joins,
                                     what=f"{aggregate.function} column")
            if column is None:
                continue
        label = expression_label(field_name)
        values.setdefault(aggregate.child, {})[label] = _folded(aggregate.function, column)
        columns.setdefault(aggregate.child, {})[label] = column
    return {aggregate_stream(name): AggregatePlan(children[name], folded, columns[name])
            for name, folded in values.items()}


def _folded(function: AggregateFunction, column: Column | None) -> Column:
    if function is AggregateFunction.COUNT:
        return sa.func.count() if column is None else sa.func.count(column)
    assert column is not None  # the model requires a column for sum, min and max
    if function is AggregateFunction.SUM:
        # The sum of no values is 0 (an order without payments has paid 0), not NULL.
        return exact_sum(column)
    return sa.func.min(column) if function is AggregateFunction.MIN else sa.func.max(column)


def _joins(resolver: _Resolver, path: Path, base: Relation,
           joins: list[JoinSpec]) -> tuple[dict[str, Relation], sa.FromClause]:
    """Each join's relation by alias, and `base` LEFT JOINed to them in the order given."""
    out: dict[str, Relation] = {}
    joined: sa.FromClause = base.from_clause
    for index, join in enumerate(joins):
        where: Path = (*path, "joins", index)
        found = resolver.relation(where, join.table, None, join.alias)
        if found is None:
            continue
        aliased = found.aliased(join.alias)
        conditions = [
            *_pair_conditions(resolver, where, join, base, out, aliased),
            *_constant_conditions(resolver, where, join, base, aliased),
        ]
        # Known even when its conditions are not, so `alias.column` elsewhere still resolves.
        out[join.alias] = aliased
        ready = [c for c in conditions if c is not None]
        if len(ready) == len(conditions):  # else the problem is recorded: no plan comes of it
            joined = joined.outerjoin(aliased.from_clause, sa.and_(*ready))
    return out, joined


def _pair_conditions(resolver: _Resolver, where: Path, join: JoinSpec, base: Relation,
                     earlier: Mapping[str, Relation],
                     aliased: Relation) -> list[sa.ColumnElement[bool] | None]:
    out: list[sa.ColumnElement[bool] | None] = []
    for mine, theirs in join.pairs().items():
        left = resolver.column((*where, "on", mine), mine, base, earlier)
        right = resolver.joined_column((*where, "on", mine), theirs, join, aliased)
        out.append(None if left is None or right is None else left == right)
    return out


def _constant_conditions(resolver: _Resolver, where: Path, join: JoinSpec, base: Relation,
                         aliased: Relation) -> list[sa.ColumnElement[bool] | None]:
    out: list[sa.ColumnElement[bool] | None] = []
    for name, value in join.constants().items():
        column = aliased.column(name)
        if column is None:  # reported below, with a hint when it is a column of the rows
            _unknown_constant_column(resolver, (*where, "on", name), name, join, base, aliased)
            out.append(None)
            continue
        # Bound as a parameter in the column's type: never pasted into the SQL.
        out.append(column == sa.bindparam(None, _constant_for(value, column), type_=column.type))
    return out


def _constant_for(value: str | int | float | bool, column: Column) -> Any:
    """A number meant for a text column, as text: MySQL compares text = 0 as numbers, and
    every text not starting with a digit is 0 there ('de' = 0 holds)."""
    try:
        wants_text = column.type.python_type is str
    except NotImplementedError:
        return value
    if wants_text and not isinstance(value, str | bool):
        return str(value)
    return value


def _unknown_constant_column(resolver: _Resolver, path: Path, name: str, join: JoinSpec,
                             base: Relation, aliased: Relation) -> None:
    if base.column(name) is not None:
        resolver.problem(path, f"constant condition {name!r}: {join.table!r} (join "
                         f"{join.alias!r}) has no such column; a constant in on: compares "
                         "the joined table's column",
                         f"filter the rows joined to with where: {name} = ..., or name a "
                         f"column of {join.table!r}: {', '.join(aliased.column_names)}")
        return
    resolver.joined_column(path, name, join, aliased)  # reports it with "did you mean"


def _child(resolver: _Resolver, path: Path, name: str, spec: ChildSpec,
           key_width: int) -> ChildPlan | None:
    relation = resolver.relation(path, spec.table, spec.query, f"child_{name}")
    if relation is None:
        return None
    before = len(resolver.problems)
    if len(spec.parent_key) != key_width:
        resolver.problem((*path, "parent_key"),
                         f"parent_key has {len(spec.parent_key)} column(s) but the key has "
                         f"{key_width}",
                         "list one child column per key column, in the key's order")
    parent_key = [resolver.column((*path, "parent_key"), c, relation, {}) for c in spec.parent_key]
    joins, from_clause = _joins(resolver, path, relation, spec.joins)
    values: dict[str, Column] = {}
    if spec.value is not None:
        # compose labels a child's value expression by the child's name (expr:tags)
        resolver.field_values(values, (*path, "value"), name, spec.value, relation, joins)
    for field_name, field_spec in (spec.fields or {}).items():
        resolver.field_values(values, (*path, "fields", field_name), field_name, field_spec,
                              relation, joins)
    order_by = [resolver.column((*path, "order_by"), c, relation, joins) for c in spec.order_by]
    if len(resolver.problems) > before:
        return None
    return ChildPlan(
        name=name, spec=spec, relation=relation,
        parent_key=tuple(c for c in parent_key if c is not None), values=values,
        order_by=tuple(c for c in order_by if c is not None),
        where=sa.text(spec.where) if spec.where else None,
        from_clause=from_clause, joins=joins,
    )
