"""Join aliases checked within the mapping itself (pure): every `alias.column` names a join.

A resource's fields may name `alias.column` of its joins; a child's value, fields and
order_by those of the child's joins; an aggregate `child.alias.column` those of that child's
joins; a join's `on` those of the joins before it. These need no database, so the loader
reports them with their line; `check` then tests the columns against the shop.
A column name holding a dot is always read as `alias.column`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from cdc_sync.mapping.aggregates import Found, aggregates_of
from cdc_sync.mapping.labels import template_placeholders
from cdc_sync.mapping.locations import YamlPath


def alias_problems(resource: dict[str, Any]) -> Iterator[Found]:
    """Undefined or repeated aliases in one resource block (its children included)."""
    aliases, found = _join_aliases(resource.get("joins"), ())
    yield from found
    yield from _fields(resource.get("fields"), ("fields",), aliases)
    children = resource.get("children")
    child_aliases: dict[str, list[str]] = {}
    if isinstance(children, dict):
        for name, child in children.items():
            if isinstance(child, dict):
                child_aliases[name], found = _join_aliases(child.get("joins"), ("children", name))
                yield from found
                yield from _child(child, ("children", name), child_aliases[name])
    yield from _aggregate_targets(resource.get("fields"), child_aliases)


def _child(child: dict[str, Any], path: YamlPath, aliases: list[str]) -> Iterator[Found]:
    if "value" in child:
        yield from _field((*path, "value"), child["value"], aliases)
    yield from _fields(child.get("fields"), (*path, "fields"), aliases)
    order_by = child.get("order_by")
    for column in [order_by] if isinstance(order_by, str) else order_by or []:
        if isinstance(column, str):
            yield from _named((*path, "order_by"), column, aliases)


def _join_aliases(joins: Any, path: YamlPath) -> tuple[list[str], list[Found]]:
    """The aliases defined, in order, and problems: repeats, `on` naming later joins."""
    aliases: list[str] = []
    found: list[Found] = []
    for index, join in enumerate(joins if isinstance(joins, list) else []):
        if not isinstance(join, dict):
            continue
        where = (*path, "joins", index)
        on = join.get("on")
        for left, right in on.items() if isinstance(on, dict) else ():
            if isinstance(right, str) and isinstance(left, str):
                found.extend(_named((*where, "on", left), left, aliases, earlier=True))
        alias = join.get("alias")
        if isinstance(alias, str):
            if alias in aliases:
                found.append(((*where, "alias"), f"join alias {alias!r} is given twice",
                              "give each join of the block its own alias"))
            aliases.append(alias)
    return aliases, found


def _fields(fields: Any, path: YamlPath, aliases: list[str]) -> Iterator[Found]:
    if isinstance(fields, dict):
        for name, field in fields.items():
            yield from _field((*path, name), field, aliases)


def _field(path: YamlPath, field: Any, aliases: list[str]) -> Iterator[Found]:
    if isinstance(field, str):
        yield from _named(path, field, aliases)
    elif isinstance(field, dict):
        if isinstance(field.get("column"), str):
            yield from _named((*path, "column"), field["column"], aliases)
        template = field.get("template")
        if isinstance(template, str):
            try:
                placeholders = template_placeholders(template)
            except ValueError:
                return  # the loader reports malformed templates
            for placeholder in placeholders:
                yield from _named((*path, "template"), placeholder, aliases)


def _aggregate_targets(fields: Any, child_aliases: dict[str, list[str]]) -> Iterator[Found]:
    if not isinstance(fields, dict):
        return
    for name, field in fields.items():
        for function, target in aggregates_of(field):
            child, _, column = target.partition(".")
            if child in child_aliases and "." in column:
                yield from _named(("fields", name, function), column, child_aliases[child],
                                  owner=f"children.{child}")


def _named(path: YamlPath, column: str, aliases: list[str], *, earlier: bool = False,
           owner: str = "this block") -> Iterator[Found]:
    alias, dot, _ = column.rpartition(".")
    if not dot or alias in aliases:
        return
    known = list(dict.fromkeys(aliases))
    close = difflib.get_close_matches(alias, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    where = "before this join" if earlier else f"in {owner}'s joins"
    yield (path, f"{column!r} names the join alias {alias!r}, which is not defined {where} "
           f"(defined: {', '.join(known) or 'none'})",
           f"{hint}add a join with alias: {alias}, or name a defined one")
