"""Finding tables and columns by what their names and types suggest (pure).

Names are compared normalized (`CustomerId` = `customer_id`), so one list of spellings covers
snake_case, CamelCase and run-together schemas.
"""

from __future__ import annotations

from collections.abc import Iterable

from cdc_sync.init.facts import (
    ColumnFact,
    Kind,
    Reference,
    SchemaFacts,
    TableFact,
    forms,
    normalize,
)

MONEY = (Kind.NUMBER, Kind.INTEGER)


def pick(table: TableFact, names: Iterable[str], kinds: Iterable[Kind] | None = None,
         contains: Iterable[str] = ()) -> ColumnFact | None:
    """The first column named like one of `names` (in order of preference), else one whose
    name contains a fragment of `contains`; only columns of `kinds` when given."""
    allowed = tuple(kinds) if kinds is not None else None
    usable = [c for c in table.columns if allowed is None or c.kind in allowed]
    by_norm = {c.norm: c for c in usable}
    for name in names:
        found = by_norm.get(normalize(name))
        if found is not None:
            return found
    for fragment in contains:
        for column in usable:
            if fragment in column.norm:
                return column
    return None


def words_in(name: str, words: Iterable[str]) -> bool:
    """Whether a table name (normalized) contains one of the words."""
    norm = normalize(name)
    return any(word in norm for word in words)


def references(facts: SchemaFacts, table: TableFact) -> list[Reference]:
    """Declared foreign keys, then references guessed from names: `customer_id` -> customers."""
    found = list(table.foreign_keys)
    declared = {ref.columns for ref in found}
    for column in table.columns:
        if (column.name,) in declared or column.kind not in (Kind.INTEGER, Kind.TEXT):
            continue
        target = _named_target(facts, table, column)
        if target is not None:
            found.append(Reference((column.name,), target.name, target.primary_key, False))
    return found


def _named_target(facts: SchemaFacts, table: TableFact, column: ColumnFact) -> TableFact | None:
    norm = column.norm
    if not norm.endswith("id") or len(norm) <= 2 or table.primary_key == (column.name,):
        return None
    stem = norm[:-2]
    exact = [t for t in facts.tables if t.name != table.name and len(t.primary_key) == 1
             and stem in forms(t.norm)]
    if exact:
        return max(exact, key=lambda t: t.rows)
    # A prefixed schema (shop_customers, wp_users): a table ending in the stem, if just one.
    ending = [t for t in facts.tables if t.name != table.name and len(t.primary_key) == 1
              and any(form.endswith(stem) for form in forms(t.norm)) and len(stem) >= 4]
    return ending[0] if len(ending) == 1 else None


def reference_to(facts: SchemaFacts, table: TableFact, target: str) -> Reference | None:
    """The single-column reference of `table` to the table named `target`, if any."""
    for ref in references(facts, table):
        if ref.table == target and len(ref.columns) == 1:
            return ref
    return None


def single_key(table: TableFact) -> str | None:
    return table.primary_key[0] if len(table.primary_key) == 1 else None


def text_column(table: TableFact, names: Iterable[str]) -> ColumnFact | None:
    """A name-like text column: one of `names`, else the first text column not a key."""
    found = pick(table, names, (Kind.TEXT,))
    if found is not None:
        return found
    keys = set(table.primary_key)
    return next((c for c in table.columns if c.kind == Kind.TEXT and c.name not in keys), None)
