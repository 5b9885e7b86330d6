"""What the shop's schema suggests to see a table's changes: a cursor and the parent's column.

A timestamp column named like a modification time (`updated_at`, `modified`, `last_update`,
...) is a cursor; failing that, a single integer primary key is an append key (right when the
table's rows are only ever inserted: payments, order lines, links). Reads the schema only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from cdc_sync.core.dependencies import Dependency, DependencyMap, Seen
from cdc_sync.core.freshness import Hint
from cdc_sync.core.resources import Resource
from cdc_sync.source.reflect import Relation

# Modification times, as shops name them (WordPress, Magento, PrestaShop, OpenCart, Sakila...).
_CHANGED_NAMES = (
    "updated_at", "updated", "modified", "modified_at", "date_modified", "date_upd",
    "last_modified", "last_update", "last_updated", "changed", "changed_at", "updated_on",
    "modified_on", "update_time", "post_modified_gmt", "post_modified",
)


def is_time(type_: sa.types.TypeEngine[Any]) -> bool:
    inner = getattr(type_, "impl", type_)
    return isinstance(type_, sa.DateTime | sa.Date) or isinstance(inner, sa.DateTime | sa.Date)


def cursor_hint(relation: Relation) -> str | None:
    """The cursor the table's columns suggest, as it would be written in the mapping."""
    columns: dict[str, sa.ColumnElement[Any]] = {
        str(c.name).lower(): c for c in relation.from_clause.c
    }
    for name in _CHANGED_NAMES:
        column = columns.get(name)
        if column is not None and (is_time(column.type) or name.endswith("modified_gmt")):
            return str(column.name)
    key = relation.primary_key
    if len(key) == 1:
        column = relation.from_clause.c[key[0]]
        if isinstance(getattr(column.type, "impl", column.type), sa.Integer):
            return f"{{column: {column.name}, kind: append}}"
    return None


def parent_key_hint(relation: Relation, resource: Resource, key: Iterable[str],
                    table: str | None) -> str | None:
    """The column most likely to hold the parent's key: `order_id` for orders (`orders` or
    `sales_order`), `<table>_<key>`; None when the table holds none (a lookup table)."""
    names: dict[str, str] = {str(c.name).lower(): str(c.name) for c in relation.from_clause.c}
    singular = (table or resource.value).rsplit(".", 1)[-1].lower().removesuffix("s")
    short = singular.rsplit("_", 1)[-1]
    own = resource.value.removesuffix("s")
    candidates = [f"{singular}_id", f"{short}_id", f"{own}_id",
                  *(f"{singular}_{k}" for k in key)]
    for candidate in candidates:
        if candidate.lower() in names:
            return names[candidate.lower()]
    return None


def hints(dependencies: DependencyMap, table_of: Any, keys: dict[Resource, list[str]],
          own_tables: dict[Resource, str | None]) -> dict[str, Hint]:
    """A Hint per table seen only by reconciliation (`table_of`: name -> Relation or None)."""
    found: dict[str, Hint] = {}
    for resource, deps in dependencies.by_resource.items():
        for dep in deps:
            if dep.seen is not Seen.RECONCILIATION or dep.table in found:
                continue
            relation = table_of(dep.table)
            if relation is not None:
                found[dep.table] = _hint(dep, relation, keys.get(resource, []),
                                         own_tables.get(resource))
    return found


def _hint(dep: Dependency, relation: Relation, key: list[str], table: str | None) -> Hint:
    return Hint(cursor_hint(relation),
                parent_key_hint(relation, dep.resource, key, table))
