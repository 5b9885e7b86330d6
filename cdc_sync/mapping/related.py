"""The tables a resource reads or watches beside its own rows, in mappings.yaml (pure):
joins, watched tables, and the cursors that show which of their rows changed.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from cdc_sync.mapping.base import ColumnList, _Strict


class CursorKind(StrEnum):
    """How a dependency's column shows its changed rows."""

    TIMESTAMP = "timestamp"  # bumped on every insert and update (updated_at)
    APPEND = "append"  # a key that only grows, in a table whose rows never change (serial id)


class CursorSpec(_Strict):
    """A column showing which rows of a joined, child or watched table changed since a mark.

    The short form `cursor: updated_at` is a timestamp; `{column: id, kind: append}` is the
    only-growing key of an append-only table (payments, order lines with a serial id).
    """

    column: str
    kind: CursorKind = CursorKind.TIMESTAMP


def _cursor_shorthand(value: Any) -> Any:
    return {"column": value} if isinstance(value, str) else value


Cursor_ = Annotated[CursorSpec, BeforeValidator(_cursor_shorthand)]
_CURSOR_HELP = ("A column showing this table's changed rows: a timestamp bumped on change "
                "(`updated_at`) or {column: id, kind: append} for an append-only table; its "
                "changes re-read the records they belong to in the next incremental cycle.")


class JoinConst(_Strict):
    """A constant the joined table's column must equal, e.g. a language id (bound, not pasted)."""

    const: str | int | float | bool = Field(
        description="Text, number or true/false the joined table's column must equal."
    )


def _join_side(value: Any) -> Any:
    # Checked here so a bare `id_lang: 1` gets one clear message, not one per union member.
    if isinstance(value, str | JoinConst):
        return value
    if isinstance(value, dict) and set(value) == {"const"}:
        constant = value["const"]
        if isinstance(constant, str | int | float | bool):
            return JoinConst(const=constant)
    raise ValueError(
        "an on: entry is `column: joined_column` (a column of the rows joined to) or "
        "`joined_column: {const: value}` (the joined table's column equals a text, number or "
        f"true/false), not {value!r}"
    )


JoinOn = Annotated[str | JoinConst, BeforeValidator(_join_side)]


class JoinSpec(_Strict):
    """A table LEFT JOINed to a resource's (or a child's) rows, e.g. a billing address table.

    Its columns are then named `alias.column` in fields and templates. `on` pairs a column of
    the rows joined to (or `alias.column` of an earlier join) with the joined table's column;
    `{const: v}` instead says the joined table's column equals v (a language, a shop id).
    """

    table: str
    alias: str
    on: dict[str, JoinOn] = Field(
        description="All must match: {column: joined table column} pairs (the left side may be "
        "alias.column of an earlier join), and {joined table column: {const: value}}."
    )
    cursor: Cursor_ | None = Field(default=None, description=_CURSOR_HELP)

    def pairs(self) -> dict[str, str]:
        """The column-to-column conditions: {column joined to: joined table column}."""
        return {mine: theirs for mine, theirs in self.on.items() if isinstance(theirs, str)}

    def constants(self) -> dict[str, str | int | float | bool]:
        """The constant conditions: {joined table column: the value it must equal}."""
        return {name: side.const for name, side in self.on.items()
                if isinstance(side, JoinConst)}


class WatchSpec(_Strict):
    """A table a resource reads through raw SQL, watched for changes by a cursor column.

    Each row of `table` (or of the raw SQL `query`) whose cursor moved names the record it
    belongs to by `parent_key`; those records are re-read whole in the next incremental cycle.
    """

    table: str | None = Field(default=None, description="The table to watch.")
    query: str | None = Field(
        default=None, description="Raw SQL: a SELECT whose rows name changed records (with the "
        "cursor and parent_key among its columns), for what one table cannot say."
    )
    cursor: Cursor_ = Field(description=_CURSOR_HELP)
    parent_key: ColumnList = Field(
        description="Column(s) giving the watched record's key, in the key's column order; "
        "with table: an SQL expression over its columns is allowed (raw SQL)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> WatchSpec:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table or query")
        return self
