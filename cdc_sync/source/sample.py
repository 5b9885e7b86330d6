"""What `check` learns from real rows: a sample of each resource composed and validated.

Names and types can fit while the values do not: `createdAt` mapped to a text column of
names, `price` to a product's name. A sync would then reject every record locally. `check`
composes the first rows of each mapped resource (50 by default: a few cheap queries) exactly
as a sync does and reports each field whose values do not convert or that Metrilo's contract
refuses, at the field's YAML line:

- every sampled record fails on the field: an error (the mapping is wrong);
- some do: a warning (the data has bad values; those records will be rejected, the rest go);
- a resource that reads no rows at all: a warning naming its `where`, `query` or `table`
  (an empty table is legitimate in a new shop, a wrong filter is not: the user decides); so
  is a child whose `where` or `query` reads no row for any parent.

Derived resources (guest customers, deleted products) are not sampled: finding their first
rows needs a pass over every order. Their fields come from the orders' mapping, sampled there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cdc_sync.core.catalogue import direct_spec
from cdc_sync.core.resources import Resource, SourceRecord
from cdc_sync.core.validate import reasons_to_hold
from cdc_sync.errors import MappingError, Problem, SourceError
from cdc_sync.mapping.loader import LoadedMapping
from cdc_sync.mapping.model import ResourceSpec

if TYPE_CHECKING:
    from cdc_sync.source.shop import ShopSource

SAMPLE_ROWS = 50
Path = tuple[str | int, ...]

_INDEX = re.compile(r"\[\d+\]")


@dataclass
class Findings:
    """Problems that fail `check` and warnings it prints but passes."""

    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def sample_findings(source: ShopSource, mapping: LoadedMapping, *,
                    rows: int = SAMPLE_ROWS) -> Findings:
    """Compose the first `rows` records of each direct resource; what they show."""
    findings = Findings()
    for resource in source.mapped_resources():
        spec = source.spec(resource)
        if spec is None:
            continue  # derived: see the module's docstring
        try:
            keys = source.sample_keys(resource, rows)
            records = list(source.records(resource, keys=keys)) if keys else []
        except (MappingError, SourceError):
            continue  # it does not fit the shop (its plan or its SQL): check reports why
        if not records:
            findings.warnings.append(_no_rows(mapping, resource, spec))
            continue
        _tally(mapping, resource, spec, records, findings)
        findings.warnings += [_no_child_rows(mapping, resource, spec, name)
                              for name in source.empty_children(resource)]
    return findings


def no_rows_note(mapping: LoadedMapping, resource: Resource) -> str | None:
    """What a sync says of a direct resource whose full read found no rows (None: derived)."""
    spec = direct_spec(mapping.spec, resource)
    if spec is None:
        return None  # no guests or deleted products is the normal case
    problem = _no_rows(mapping, resource, spec)
    return f"read no rows: {problem.what} ({problem.where}); fix: {problem.fix}"


def _no_rows(mapping: LoadedMapping, resource: Resource, spec: ResourceSpec) -> Problem:
    name = resource.value
    if spec.where is not None:
        return Problem(mapping.where(name, "where"),
                       f"{name} reads no rows with where: {spec.where}",
                       "run the where in a SQL console; fix the condition (ids differ between "
                       "installations: look them up by code), or ignore this if the table is "
                       "empty for now")
    if spec.query is not None:
        return Problem(mapping.where(name, "query"), f"{name}: the query returns no rows",
                       "run the query in a SQL console and correct its conditions, or ignore "
                       "this if the shop has none yet")
    return Problem(mapping.where(name, "table"), f"{name}: table {spec.table!r} has no rows",
                   "map the table that holds them, or ignore this if the shop has none yet")


def _no_child_rows(mapping: LoadedMapping, resource: Resource, spec: ResourceSpec,
                   name: str) -> Problem:
    child = spec.children[name]
    path = (resource.value, "children", name)
    if child.where is not None:
        return Problem(mapping.where(*path, "where"),
                       f"{resource.value}.children.{name} reads no rows with where: "
                       f"{child.where}",
                       "run the where in a SQL console and fix the condition (codes and ids "
                       "differ between installations), or ignore this if there are none yet")
    return Problem(mapping.where(*path, "query"),
                   f"{resource.value}.children.{name}: the query returns no rows",
                   "run the query in a SQL console and correct its conditions, or ignore this "
                   "if there are none yet")


def _tally(mapping: LoadedMapping, resource: Resource, spec: ResourceSpec,
           records: list[SourceRecord], findings: Findings) -> None:
    failing: dict[str, list[tuple[str, str]]] = {}  # field -> [(key, reason)], one per record
    for record in records:
        reasons = [*record.problems, *reasons_to_hold(resource.endpoint, record.payload)]
        seen: set[str] = set()
        for reason in reasons:
            name = _field_of(reason)
            if name not in seen:
                seen.add(name)
                failing.setdefault(name, []).append((record.key, reason))
    for name, failures in failing.items():
        every = len(failures) == len(records)
        key, reason = failures[0]
        what = (f"{resource.value}: {len(failures)} of {len(records)} sampled records cannot "
                f"be sent: {reason} (key {key})")
        fix = (("map a column holding such values, or convert them (type:, map:, default:, "
                "expression:)") if every else
               "fix those rows in the shop, or convert the values (map:, default:, expression:)")
        fix += f"; `cdc-sync preview {resource.value} --key {key}` shows the record"
        problem = Problem(mapping.where(*_path(resource, spec, name)), what, fix)
        (findings.errors if every else findings.warnings).append(problem)


def _field_of(reason: str) -> str:
    """The field a reason names: `products[0].quantity: ...` -> products.quantity."""
    head = reason.split(":", 1)[0].strip()
    return _INDEX.sub("", head)


def _path(resource: Resource, spec: ResourceSpec, name: str) -> Path:
    """The YAML path of a payload field: a field, a child's field or value, else the fields."""
    base = resource.value
    if name in spec.fields:
        return (base, "fields", name)
    head, _, rest = name.partition(".")
    child = spec.children.get(head)
    if child is None:
        return (base, "fields")
    if rest and child.fields is not None and rest in child.fields:
        return (base, "children", head, "fields", rest)
    if child.value is not None:
        return (base, "children", head, "value")
    return (base, "children", head)
