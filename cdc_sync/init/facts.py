"""What `init` knows about a shop's schema: tables, columns, keys, references and row counts.

Plain data, gathered once by `init.reflect`, so the heuristics and presets that read it are
pure and testable without a database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """A column's type as far as choosing a Metrilo field cares."""

    INTEGER = "integer"
    NUMBER = "number"  # decimals and floats: money
    TEXT = "text"
    DATE = "date"  # DATE, DATETIME, TIMESTAMP
    BOOLEAN = "boolean"
    OTHER = "other"


@dataclass(frozen=True)
class ColumnFact:
    name: str
    kind: Kind
    length: int | None = None  # of text columns, when declared
    values: tuple[str, ...] = ()  # distinct values seen, for status and flag columns (<= 20)

    @property
    def norm(self) -> str:
        return normalize(self.name)


@dataclass(frozen=True)
class Reference:
    """Columns of a table pointing at another table (a foreign key, or guessed from names)."""

    columns: tuple[str, ...]
    table: str
    target_columns: tuple[str, ...]
    declared: bool = True  # False: inferred from a name like customer_id


@dataclass(frozen=True)
class TableFact:
    name: str
    columns: tuple[ColumnFact, ...]
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[Reference, ...] = ()
    rows: int = 0  # counted up to a cap (init.reflect.FACT_ROWS)

    @property
    def norm(self) -> str:
        return normalize(self.name)

    def column(self, name: str) -> ColumnFact | None:
        return next((c for c in self.columns if c.name == name), None)

    def has(self, name: str) -> bool:
        return self.column(name) is not None


@dataclass(frozen=True)
class SchemaFacts:
    dialect: str  # sqlite, postgresql, mysql, mariadb
    tables: tuple[TableFact, ...] = field(default_factory=tuple)

    def table(self, name: str) -> TableFact | None:
        return next((t for t in self.tables if t.name == name), None)

    def names(self) -> set[str]:
        return {t.name for t in self.tables}

    def quote(self, name: str) -> str:
        """An identifier quoted for raw SQL in this dialect (names like `order` are reserved)."""
        if self.dialect in ("mysql", "mariadb"):
            return f"`{name}`"
        return '"' + name.replace('"', '""') + '"'


def normalize(name: str) -> str:
    """Lowercase without separators: `customer_id`, `CustomerId` and `customerID` compare equal."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def singular(norm: str) -> str:
    """A normalized plural made singular, roughly (categories -> category, orders -> order)."""
    if norm.endswith("ies"):
        return norm[:-3] + "y"
    if norm.endswith(("sses", "xes")):
        return norm[:-2]
    if norm.endswith("s") and not norm.endswith("ss"):
        return norm[:-1]
    return norm


def forms(norm: str) -> set[str]:
    """The ways a normalized table name may be named in a column: itself and its singular
    (both `purchases` -> purchase and `statuses` -> status are tried)."""
    found = {norm, singular(norm)}
    if norm.endswith("es"):
        found.add(norm[:-2])
    return found
