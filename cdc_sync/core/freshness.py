"""How fresh each part of a record is: per dependency table, how its changes are seen and how
late they can reach Metrilo at worst (pure; `check` and `status` show it).

A change seen by a cursor, an append key or a watch arrives in the next cycle; a resource
without a cursor is read whole every cycle; anything else waits for reconciliation, which
verifies every record within `sync.full_reconcile_minutes`. A table raw SQL reads that nothing
watches is a blind spot `check` warns about, with the `watch:` block that fixes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cdc_sync.core.dependencies import Dependency, DependencyMap, Seen
from cdc_sync.core.guests import FULL_READ
from cdc_sync.core.resources import Resource
from cdc_sync.errors import Problem
from cdc_sync.mapping.loader import LoadedMapping

NEXT_CYCLE = "next cycle"


@dataclass(frozen=True)
class Hint:
    """What the shop's schema suggests for a table: a cursor, and the column naming a parent."""

    cursor: str | None = None  # `updated_at`, or `{column: id, kind: append}`
    parent_key: str | None = None


def delay(dep: Dependency, reconcile_minutes: float) -> str:
    """The worst-case delay of a change in `dep` before it reaches Metrilo."""
    if dep.seen is not Seen.RECONCILIATION or reconcile_minutes == 0:
        return NEXT_CYCLE
    return f"{reconcile_minutes:g} min"


def later(dep: Dependency, reconcile_minutes: float) -> str | None:
    """What of `dep`'s changes waits for reconciliation although its cursor is followed
    (guests: core/guests.SETTLED_LATER), with that delay; None when nothing waits."""
    if dep.later is None or reconcile_minutes == 0:  # 0: every cycle reads everything
        return None
    return (f"within {reconcile_minutes:g} min, by the full read once per window "
            f"({FULL_READ}): {dep.later}")


def rows(dependencies: DependencyMap, reconcile_minutes: float) -> dict[str, list[dict[str, Any]]]:
    """Per resource, each dependency as plain data (for `status --json` and the tables)."""
    return {
        resource.value: [
            {"table": d.table, "via": d.via, "seen": d.seen.value, "how": d.how(),
             "delay": delay(d, reconcile_minutes), "raw_sql": d.raw_sql, "blind": d.blind,
             "tracker": d.tracker, "later": later(d, reconcile_minutes)}
            for d in deps
        ]
        for resource, deps in dependencies.by_resource.items()
    }


def blind_spots(dependencies: DependencyMap, mapping: LoadedMapping, reconcile_minutes: float,
                hints: Mapping[str, Hint] | None = None) -> list[Problem]:
    """A warning per table raw SQL reads that has neither a cursor nor a watch, with the fix;
    and per piece of raw SQL whose tables could not be found."""
    found = []
    seen: set[tuple[Resource, str]] = set()
    for dep in dependencies.blind():
        if (dep.resource, dep.table) in seen:
            continue
        seen.add((dep.resource, dep.table))
        hint = (hints or {}).get(dep.table, Hint())
        when = (f"within {reconcile_minutes:g} min, by reconciliation" if reconcile_minutes
                else "in the next cycle only because every cycle reads everything")
        found.append(Problem(
            mapping.where(*dep.path),
            f"table {dep.table} is read by raw SQL ({dep.resource.value}.{dep.via}) but neither "
            f"watched nor given a cursor: its changes reach Metrilo only {when}",
            f"to see them in the next cycle add under {dep.resource.value}: "
            f"{watch_block(dep, hint)}",
        ))
    for dep in dependencies.idle():
        part = dep.path[:-1] if dep.path[-1] in ("table", "query") else dep.path
        found.append(Problem(
            mapping.where(*part, "cursor"),
            f"the cursor on {dep.resource.value}.{dep.via} has no effect: {dep.resource.value} "
            "has no cursor of its own, so every cycle reads it whole",
            f"give {dep.resource.value} a cursor: (a column bumped on every change) for "
            "incremental cycles, or remove this one",
        ))
    for bad in dependencies.unparsed:
        found.append(Problem(
            mapping.where(bad.resource.value, *bad.path[1:]),
            f"the SQL could not be parsed to find the tables it reads ({bad.error}); changes "
            "in them are seen only by reconciliation",
            "list the tables it reads under watch: (see docs/mappings.md, change detection)",
        ))
    return found


def watch_block(dep: Dependency, hint: Hint) -> str:
    """The `watch:` entry that makes `dep`'s changes visible, as one line of YAML."""
    cursor = hint.cursor or "<a column bumped on change, or {column: id, kind: append}>"
    if "append" in cursor and hint.cursor is not None:
        cursor += " (if its rows are only ever inserted)"
    parent = hint.parent_key or (f"<its column holding the {dep.resource.value} key; a table "
                                 "without one is watched by a query: joining it to one with it>")
    return f"watch: [{{table: {dep.table}, cursor: {cursor}, parent_key: {parent}}}]"


def suggestions(dependencies: DependencyMap, hints: Mapping[str, Hint]) -> list[str]:
    """`cursor:` lines for joins and children seen only by reconciliation, from the schema."""
    found = []
    for deps in dependencies.by_resource.values():
        for dep in deps:
            hint = hints.get(dep.table)
            if (dep.seen is Seen.RECONCILIATION and not dep.raw_sql and hint is not None
                    and hint.cursor is not None and _mapped_here(dep)):
                only = " (if its rows are only ever inserted)" if "append" in hint.cursor else ""
                found.append(f"{dep.resource.value}.{dep.via} ({dep.table}): add "
                             f"`cursor: {hint.cursor}` to see its changes in the next "
                             f"cycle{only}")
    return list(dict.fromkeys(found))


def _mapped_here(dep: Dependency) -> bool:
    """Joins and children of the resource's own block (not a derived resource's bases)."""
    return dep.via.startswith(("joins.", "children.")) and "where" not in dep.via
