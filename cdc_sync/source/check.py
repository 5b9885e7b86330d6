"""`cdc-sync check`: every way the mapping does not fit the shop, found at once. Reads only.

Names first (tables, columns, aliases, placeholders, key shape: plan.py), then what needs the
database to answer: types against coercions, the user's SQL run with LIMIT 0, key uniqueness,
Metrilo's required fields, and what guest customers and deleted products need.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from cdc_sync.core.catalogue import Catalogue
from cdc_sync.core.compose import default_coercion, is_list_field
from cdc_sync.core.resources import Resource
from cdc_sync.errors import Problem
from cdc_sync.mapping.labels import aggregate_stream, expression_label, key_string
from cdc_sync.mapping.loader import LoadedMapping
from cdc_sync.mapping.model import FieldSpec, ResourceSpec
from cdc_sync.source.connect import database_message
from cdc_sync.source.fit import misfit, type_display, type_family
from cdc_sync.source.plan import AggregatePlan, ChildPlan, Column, Path, ResourcePlan
from cdc_sync.source.query import duplicate_key_select, probe_select, repeated_child_select
from cdc_sync.source.required import required_field_problems

if TYPE_CHECKING:
    from cdc_sync.source.query import AnySelect

_PROBE_WITHOUT_JIT = "SET LOCAL jit = off"
_SQL_FIX = "run it in a SQL console against the shop database and correct it"


@dataclass
class Checker:
    """Checks resolved plans against the live database, collecting problems."""

    engine: sa.Engine
    mapping: LoadedMapping
    # Key uniqueness is a fact of the data, not of the mapping, and costs a full scan; a sync
    # rejects the records of a repeated key instead (source.stream), so it skips this check.
    data: bool = True

    def problem(self, path: Path, what: str, fix: str) -> Problem:
        return Problem(self.mapping.where(*path), what, fix)

    def plan_problems(self, resource: Resource, plan: ResourcePlan, *,
                      complete: bool = True) -> Iterator[Problem]:
        """`complete=False`: a partial plan (parts failed to resolve); its key is not tested."""
        yield from self.type_problems(resource, plan)
        sql = list(self.sql_problems(plan))
        yield from sql
        if not sql and self.data and complete:
            yield from self.duplicate_problems(plan)
            yield from self.repeating_join_problems(plan)

    def type_problems(self, resource: Resource, plan: ResourcePlan) -> Iterator[Problem]:
        path: Path = (plan.name, "fields")
        yield from self._fits(resource, path, "", plan.spec.fields, plan.values)
        yield from self.aggregate_type_problems(resource, plan)
        for name, child in plan.children.items():
            child_path: Path = (plan.name, "children", name)
            if child.spec.value is not None:
                yield from self._fits(resource, child_path, "", {"value": child.spec.value},
                                      child.values, qualified=name)
            yield from self._fits(resource, (*child_path, "fields"), f"{name}.",
                                  child.spec.fields or {}, child.values)

    def _fits(self, resource: Resource, path: Path, prefix: str, fields: Mapping[str, FieldSpec],
              values: Mapping[str, Column], qualified: str | None = None) -> Iterator[Problem]:
        for name, spec in fields.items():
            column = values.get(spec.column) if spec.column is not None else None
            if column is None or spec.map is not None:
                continue  # a map's output, not the column, is coerced
            coercion = spec.type or default_coercion(resource, qualified or f"{prefix}{name}")
            why = misfit(coercion, spec, column.type)
            if why is not None:
                yield self.problem((*path, name), f"{why} ({spec.column!r})",
                                   "map a column that holds such values, or set type: to one "
                                   "that fits (string, number, integer, boolean, timestamp)")

    def sql_problems(self, plan: ResourcePlan) -> Iterator[Problem]:
        """The user's raw SQL (joins, where, expressions), each run on its own with LIMIT 0."""
        base: Path = (plan.name,)
        if plan.spec.joins:
            yield from self.run(probe_select(plan.from_clause), (*base, "joins"), "the joins fail")
        if plan.where is not None:
            yield from self.run(probe_select(plan.from_clause, where=plan.where), (*base, "where"),
                                "where fails")
        top = [((*base, "fields", n, "expression"), n) for n, f in plan.spec.fields.items()
               if f.expression is not None]
        yield from self._expressions(plan.from_clause, top, plan.values)
        for name, child in plan.children.items():
            yield from self._child_sql((*base, "children", name), child)
        for aggregate in plan.aggregates.values():
            yield from self._aggregate_sql(plan, aggregate)

    def _child_sql(self, path: Path, child: ChildPlan) -> Iterator[Problem]:
        source = child.from_clause
        if child.spec.joins:
            yield from self.run(probe_select(source), (*path, "joins"), "the joins fail")
        if child.where is not None:
            yield from self.run(probe_select(source, where=child.where), (*path, "where"),
                                "where fails")
        exprs = [((*path, "fields", n, "expression"), n)
                 for n, f in (child.spec.fields or {}).items() if f.expression is not None]
        if child.spec.value is not None and child.spec.value.expression is not None:
            exprs.append(((*path, "value", "expression"), child.name))
        yield from self._expressions(source, exprs, child.values)

    def _aggregate_sql(self, plan: ResourcePlan, aggregate: AggregatePlan) -> Iterator[Problem]:
        """A child read only for aggregates is probed here; then the aggregates themselves."""
        child = aggregate.child
        path: Path = (plan.name, "children", child.name)
        found = [] if child.spec.sent else list(self._child_sql(path, child))
        yield from found
        if not found:
            probe = probe_select(child.from_clause, *aggregate.values.values())
            yield from self.run(probe, path, "aggregating its rows fails")

    def aggregate_type_problems(self, resource: Resource,
                                plan: ResourcePlan) -> Iterator[Problem]:
        """Sums of non-numbers; an aggregate whose type its field's coercion cannot take."""
        for name, spec in plan.spec.fields.items():
            aggregate = spec.aggregate()
            if aggregate is None:
                continue
            grouped = plan.aggregates.get(aggregate_stream(aggregate.child))
            label = expression_label(name)
            if grouped is None or label not in grouped.values:
                continue
            # The folded column's type tells what a sum, min or max of it holds.
            source = grouped.columns[label]  # None: a count of rows
            folded = grouped.values[label] if source is None else source
            function = aggregate.function.value
            path: Path = (plan.name, "fields", name, function)
            target = f"{function}: {getattr(spec, function)}"
            family = type_family(folded.type)
            if aggregate.function == "sum" and family not in (None, "integer", "number"):
                yield self.problem(path, f"{target}: {aggregate.column!r} is a "
                                   f"{type_display(folded.type)} column, not a number",
                                   f"sum a numeric column (count: {aggregate.child} counts "
                                   "rows; min: and max: take any column)")
                continue
            why = misfit(spec.type or default_coercion(resource, name), spec, folded.type)
            if why is not None:
                yield self.problem(path, f"{why} ({target})",
                                   "aggregate a column that holds such values, or set type:")

    def _expressions(self, source: sa.FromClause, exprs: list[tuple[Path, str]],
                     values: Mapping[str, Column]) -> Iterator[Problem]:
        for path, field_name in exprs:
            column = values[expression_label(field_name)]
            yield from self.run(probe_select(source, column), path, "the expression fails")

    def run(self, stmt: AnySelect, path: Path, what: str) -> Iterator[Problem]:
        try:
            with self.engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    # A probe reads no rows, but PostgreSQL plans JIT compilation from the
                    # query's whole estimated cost: the guests' anti-join probe was compiled,
                    # 50-80 ms of the shop's CPU at every `cdc-sync sync` at 1M orders.
                    conn.exec_driver_sql(_PROBE_WITHOUT_JIT)  # for this transaction only
                conn.execute(stmt).all()
        except sa.exc.DBAPIError as exc:
            yield self.problem(path, f"{what}: {database_message(exc, self.engine)}", _SQL_FIX)

    def duplicate_problems(self, plan: ResourcePlan) -> Iterator[Problem]:
        if not plan.spec.joins and plan.key_names == plan.relation.primary_key:
            return  # a primary key is unique by definition
        try:
            with self.engine.connect() as conn:
                found = conn.execute(duplicate_key_select(plan)).first()
        except sa.exc.DBAPIError as exc:
            yield self.problem((plan.name, "key"), "the key cannot be checked for uniqueness: "
                               f"{database_message(exc, self.engine)}", _SQL_FIX)
            return
        if found is not None:
            width = len(plan.key)
            example = key_string(list(found[:width]))
            yield self.problem(
                (plan.name, "key"),
                f"key ({', '.join(plan.key_names)}) is not unique: {example!r} is on "
                f"{found[width]} rows",
                "set key: to columns that identify one row, or make each join match at most one",
            )


    def repeating_join_problems(self, plan: ResourcePlan) -> Iterator[Problem]:
        """A child's join matching several rows repeats the child row (and what sums count)."""
        children = {c.name: c for c in plan.children.values()}
        children.update((a.child.name, a.child) for a in plan.aggregates.values())
        for child in children.values():
            stmt = repeated_child_select(child)
            if stmt is None:
                continue
            path: Path = (plan.name, "children", child.name, "joins")
            try:
                with self.engine.connect() as conn:
                    found = conn.execute(stmt).first()
            except sa.exc.DBAPIError as exc:
                yield self.problem(path, "the joins cannot be checked for repeated rows: "
                                   f"{database_message(exc, self.engine)}", _SQL_FIX)
                continue
            if found is not None:
                width = len(child.relation.primary_key)
                yield self.problem(
                    path, f"the joins match several rows for one {child.relation.label!r} row "
                    f"({key_string(list(found[:width]))!r} comes out {found[width]} times), so "
                    "its values repeat and aggregates count it more than once",
                    "make each join match at most one row (a key column on each side, or a "
                    "constant such as {const: 1} for a language or shop)")


def spec_problems(mapping: LoadedMapping) -> Iterator[Problem]:
    """Problems the mapping has whatever the database: Metrilo's required fields."""
    for entry in Catalogue(mapping.spec):
        if entry.spec is not None:
            for path, what, fix in required_field_problems(entry.resource, entry.spec):
                yield Problem(mapping.where(*path), what, fix)
            yield from _list_default_problems(mapping, entry.resource, entry.spec)


def _list_default_problems(mapping: LoadedMapping, resource: Resource,
                           spec: ResourceSpec) -> Iterator[Problem]:
    """A list field's default must be a list: `default: vip` on tags would send "vip"."""
    fields: list[tuple[Path, str, FieldSpec]] = [
        ((resource.value, "fields", n), n, f) for n, f in spec.fields.items()
    ]
    for child_name, child in spec.children.items():
        fields += [((resource.value, "children", child_name, "fields", n), f"{child_name}.{n}", f)
                   for n, f in (child.fields or {}).items()]
    for path, name, field in fields:
        default = field.default
        if default is None or isinstance(default, list) or not is_list_field(resource, name, field):
            continue
        yield Problem(mapping.where(*path, "default"),
                      f"{name} is a list, but its default {default!r} is not",
                      f"give a list: default: [{default}] (or default: [] for none)")
