"""Aggregate fields (`amount: {sum: payments.amount}`) checked against their resource (pure).

The models check each field alone; whether the child an aggregate names exists, is a
collection, and whether a child sent nowhere is used at all, needs the whole resource. These
checks run on the raw YAML data (before the models), so each problem keeps its own line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from cdc_sync.mapping.locations import YamlPath
from cdc_sync.mapping.model import AggregateFunction

Found = tuple[YamlPath, str, str]
"""(path relative to the checked block, what is wrong, the fix)."""

RESOURCES = ("customers", "categories", "products", "orders")


def is_resource_field(yaml_path: YamlPath) -> bool:
    """`orders.fields.amount`, not a child's field nor guest_customers.fields.x."""
    return len(yaml_path) == 3 and yaml_path[0] in RESOURCES and yaml_path[1] == "fields"


def aggregate_problems(resource: dict[str, Any]) -> Iterator[Found]:
    """Aggregates naming a missing or single child; children neither sent nor aggregated."""
    fields, children = resource.get("fields"), resource.get("children") or {}
    if not isinstance(fields, dict) or not isinstance(children, dict):
        return
    used: set[str] = set()
    for name, field in fields.items():
        for function, target in aggregates_of(field):
            child = target.partition(".")[0]
            found = _child_problem(function, target, child, children)
            if found is None:
                used.add(child)
            else:
                yield (("fields", name, function), *found)
    for name, child in children.items():
        if isinstance(child, dict) and not {"value", "fields"} & child.keys() and name not in used:
            yield (("children", name), f"child {name} has neither value nor fields, and no "
                   "aggregate field uses it: it would be read for nothing",
                   f"give it value: or fields:, or use it in a field such as "
                   f"`amount: {{sum: {name}.<column>}}`")


def misplaced_aggregates(field: Any) -> Iterator[Found]:
    """An aggregate outside a resource's own fields (a child's, guest_customers'...)."""
    for function, _ in aggregates_of(field):
        yield ((function,), f"{function}: only a resource's own fields may aggregate over "
               "its children", "move the field to the resource's fields:, next to the child")


def aggregates_of(field: Any) -> Iterator[tuple[str, str]]:
    """(function, target) of each aggregate key in a raw field block."""
    if isinstance(field, dict):
        for function in AggregateFunction:
            target = field.get(function.value)
            if isinstance(target, str):
                yield function.value, target


def _child_problem(function: str, target: str, child: str,
                   children: dict[str, Any]) -> tuple[str, str] | None:
    if child not in children:
        close = difflib.get_close_matches(child, list(children), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return (f"{function}: {target} names the child {child!r}, which this resource does "
                "not have",
                f"{hint}add children.{child} (table:, parent_key:; value and fields may be left "
                "out when only aggregates read it)")
    spec = children[child]
    if isinstance(spec, dict) and spec.get("single") is True:
        return (f"{function}: {target}: {child} is a single child (one object per record, "
                "not a collection), so there is nothing to aggregate",
                f"aggregate a child listing rows (drop single: true), or map the value "
                f"as a field of children.{child}")
    return None
