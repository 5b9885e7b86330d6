"""The shape of mappings.yaml, as pydantic models (pure: no database, no I/O).

A mapping says, per Metrilo resource, where its rows come from (a table or a query), which
columns form the key, how each Metrilo field is computed from a row, and which child
collections (order lines, tags, ...) are read beside it, set-based.
docs/mappings.md documents every key with examples; mapping.schema.json is generated from
these models (`cdc-sync schema`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BeforeValidator, Field, model_validator

from cdc_sync.mapping.base import ColumnList, _Strict
from cdc_sync.mapping.related import _CURSOR_HELP, Cursor_, JoinSpec, WatchSpec


class Coercion(StrEnum):
    """How a source value becomes a Metrilo value."""

    STRING = "string"
    NUMBER = "number"  # Decimal 10.42 -> 10.42 exactly (shortest repr), never 10.4199999
    INTEGER = "integer"
    BOOLEAN = "boolean"  # 1/0, true/false, 'Y'/'N', 't'/'f', 'yes'/'no'
    TIMESTAMP = "timestamp"  # DATE, DATETIME (naive: source_timezone), TIMESTAMPTZ, epoch -> ms
    EMAIL = "email"  # trimmed, lowercased
    JSON = "json"  # passed through as-is (already a JSON value)


class Decode(StrEnum):
    """How stored text is decoded before anything else reads it."""

    HTML = "html"  # HTML entities (&amp; &quot; &#039;) -> characters, as OpenCart stores names


class Epoch(StrEnum):
    """Unit of a numeric timestamp column."""

    SECONDS = "s"
    MILLISECONDS = "ms"


def _field_shorthand(value: Any) -> Any:
    # `firstName: first_name` is short for `firstName: {column: first_name}`.
    return {"column": value} if isinstance(value, str) else value


def _map_keys_as_strings(value: Any) -> Any:
    # YAML reads `1: pending` with an int key; source values are compared as strings.
    if isinstance(value, dict):
        return {_scalar_text(k): v for k, v in value.items()}
    return value


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class AggregateFunction(StrEnum):
    """How an aggregate field folds a child's rows into one value (in SQL, per parent)."""

    SUM = "sum"  # of no rows (or only NULLs): 0
    COUNT = "count"  # rows (`count: child`) or non-NULL values (`count: child.column`); none: 0
    MIN = "min"  # of no rows: NULL (the field is left out, or gets `default`)
    MAX = "max"


class Aggregate(NamedTuple):
    """`sum: payments.amount` read: the function, the child, the column (None: count rows)."""

    function: AggregateFunction
    child: str
    column: str | None


_AGGREGATE_HELP = ("child.column: a child of this resource and a column of its table (or "
                   "child.alias.column of its joins)")


class FieldSpec(_Strict):
    """One Metrilo field computed from a row: exactly one of column, expression, template, const
    or an aggregate over a child (sum, count, min, max).

    With no `type`, the type is the Metrilo field's own (createdAt: timestamp, price: number,
    email: email, subscribed: boolean, ...; see `compose.default_coercion`).
    A NULL result leaves the field out of the record; `default` fills it instead.
    """

    column: str | None = None
    expression: str | None = Field(
        default=None, description="Raw SQL evaluated by the shop DB (like query and where)."
    )
    template: str | None = Field(
        default=None, description="Text with {column} placeholders, e.g. https://shop/p/{slug}."
    )
    const: Any = None
    sum: str | None = Field(default=None, description=f"Sum over a child's rows; {_AGGREGATE_HELP}"
                            ". No rows: 0.")
    count: str | None = Field(default=None, description="Rows of a child (child), or its "
                              "non-NULL values (child.column). No rows: 0.")
    min: str | None = Field(default=None, description=f"Least value in a child's rows; "
                            f"{_AGGREGATE_HELP}. No rows: NULL.")
    max: str | None = Field(default=None, description=f"Greatest value in a child's rows; "
                            f"{_AGGREGATE_HELP}. No rows: NULL.")
    type: Coercion | None = None
    epoch: Epoch | None = Field(default=None, description="Unit of a numeric timestamp column.")
    timezone: str | None = Field(
        default=None, description="Time zone of naive datetimes; default: source_timezone."
    )
    map: Annotated[dict[str, Any] | None, BeforeValidator(_map_keys_as_strings)] = Field(
        default=None, description="Value map applied to the source value (as text)."
    )
    default: Any = Field(default=None, description="Used when the value is NULL or not in map.")
    split: str | None = Field(
        default=None, description="Split a delimited text into a list of trimmed strings."
    )
    decode: Decode | None = Field(
        default=None, description="Decode stored text first: html turns &amp; into &."
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> FieldSpec:
        given = [
            name
            for name in ("column", "expression", "template", "const", *AggregateFunction)
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of column, expression, template, const, or an aggregate "
                f"(sum, count, min, max) (found {', '.join(given) or 'none'})"
            )
        aggregate = self.aggregate()
        if aggregate is not None and aggregate.column is None and aggregate.function != "count":
            raise ValueError(f"{aggregate.function}: {aggregate.child} names no column; write "
                             f"{aggregate.function}: {aggregate.child}.<column>")
        return self

    def aggregate(self) -> Aggregate | None:
        """The aggregate this field computes, or None when it reads the row itself."""
        for function in AggregateFunction:
            target: str | None = getattr(self, function.value)
            if target is not None:
                child, _, column = target.partition(".")
                return Aggregate(function, child, column or None)
        return None


Field_ = Annotated[FieldSpec, BeforeValidator(_field_shorthand)]


class ChildSpec(_Strict):
    """A collection read beside the resource in one query, merged by parent key.

    `value` gives a list of scalars (tags, category ids, coupon codes); `fields` a list of
    objects (order lines, options). `single: true` takes the first row as one object. With
    neither, the child is not sent: it is read only for the resource's aggregate fields.
    """

    table: str | None = None
    query: str | None = None
    joins: list[JoinSpec] = Field(
        default_factory=list,
        description="Tables LEFT JOINed to each child row (an order line's product); their "
        "columns are alias.column in value, fields and order_by.",
    )
    where: str | None = None
    parent_key: ColumnList = Field(
        description="Columns of the child holding the parent's key, in the key's column order."
    )
    value: Field_ | None = None
    fields: dict[str, Field_] | None = None
    single: bool = False
    order_by: ColumnList = Field(default_factory=list)
    cursor: Cursor_ | None = Field(default=None, description=_CURSOR_HELP)

    @property
    def sent(self) -> bool:
        """Whether the child fills a Metrilo field (else only aggregates read it)."""
        return self.value is not None or self.fields is not None

    @model_validator(mode="after")
    def _shape(self) -> ChildSpec:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table or query")
        if self.value is not None and self.fields is not None:
            # Neither: the child is only read for aggregates (the loader checks one uses it).
            raise ValueError("give one of value (a list of scalars) or fields, not both")
        if self.single and self.fields is None:
            raise ValueError("single: true needs fields")
        return self


class DeleteAction(StrEnum):
    GONE = "gone"  # record it as gone in state; send it again if it comes back
    TAG = "tag"  # customers: tag the customer (e.g. `deleted`)
    STATUS = "status"  # orders: send the order again with a status (e.g. `deleted`)


class OnDelete(_Strict):
    action: DeleteAction = DeleteAction.GONE
    tag: str = "deleted"
    status: str = "deleted"



class ResourceSpec(_Strict):
    """Where a resource's rows come from and how each becomes a Metrilo record."""

    table: str | None = Field(default=None, description="Table name; schema.table allowed.")
    query: str | None = Field(default=None, description="SQL query (raw SQL, for EAV schemas).")
    where: str | None = Field(default=None, description="SQL filter (raw SQL).")
    key: ColumnList | None = Field(
        default=None, description="Key columns; default: the table's primary key."
    )
    cursor: str | None = Field(
        default=None, description="A column bumped on every change, for incremental reads."
    )
    joins: list[JoinSpec] = Field(default_factory=list)
    fields: dict[str, Field_]
    children: dict[str, ChildSpec] = Field(default_factory=dict)
    watch: list[WatchSpec] = Field(
        default_factory=list,
        description="Tables named in raw SQL (query, expression, where) watched for changes.",
    )
    on_delete: OnDelete = Field(default_factory=OnDelete)
    enabled: bool = True

    @model_validator(mode="after")
    def _one_source(self) -> ResourceSpec:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table or query")
        if self.query is not None and not self.key:
            raise ValueError("a query source needs key: (there is no primary key to reflect)")
        return self


class GuestCustomersSpec(_Strict):
    """Customers synthesized from orders whose email belongs to no customer row.

    email and createdAt (the earliest order's) come from the orders mapping; `fields` may add
    firstName/lastName from the orders source (its columns and joins).
    """

    enabled: bool = True
    fields: dict[str, Field_] = Field(default_factory=dict)


class DeletedProductsSpec(_Strict):
    """Products that order lines reference but the products source no longer holds.

    The id is the order line's productId; `fields` (name, price) are read from the order-line
    child's source, so Metrilo keeps those orders instead of dropping them.
    """

    enabled: bool = True
    fields: dict[str, Field_] = Field(default_factory=dict)


class SyncOptions(_Strict):
    """How cycles behave; each has a safe default."""

    delete_guard: float = Field(
        default=0.2, ge=0, le=1, description="Largest share of a resource treated as gone at once."
    )
    delete_guard_min: int = Field(
        default=10, ge=0, description="This many records may go in one cycle whatever their "
        "share (small resources); every record of a resource going still trips the guard.",
    )
    cursor_overlap_seconds: int = Field(
        default=300, ge=0, description="Re-read this much before the high-water mark."
    )
    full_reconcile_minutes: float = Field(
        default=15, ge=0, description="Every record is read again within this window, a "
        "key-range slice per cycle, in cursor mode (0: a full read every cycle; fractions for "
        "tests and soaks).",
    )
    hold_changes_over: int = Field(
        default=10_000, ge=0, description="A mapping edit changing more records waits for resync."
    )


class MappingSpec(_Strict):
    """The whole of mappings.yaml."""

    version: Literal[1] = 1
    source_timezone: str = Field(default="UTC", description="Zone of naive DATETIME columns.")
    sync: SyncOptions = Field(default_factory=SyncOptions)
    customers: ResourceSpec | None = None
    guest_customers: GuestCustomersSpec = Field(default_factory=GuestCustomersSpec)
    categories: ResourceSpec | None = None
    deleted_products: DeletedProductsSpec = Field(default_factory=DeletedProductsSpec)
    products: ResourceSpec | None = None
    orders: ResourceSpec | None = None
