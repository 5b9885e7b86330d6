"""SELECT statements for a resource plan: rows, children, cursor high-water, existence, duplicates.

Every statement is built from reflected columns; the only raw SQL is what the user wrote
(`query`, `where`, `expression`). Parents and children are ordered by the same key order
(see keys.py) so they can be merged while streaming.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from cdc_sync.source.digests import COUNT_LABEL, DIGEST_LABEL, SUM_LABEL, row_md5, row_number
from cdc_sync.source.keys import (
    INTEGER_HIGHEST,
    INTEGER_LOWEST,
    KeyKind,
    KeySpan,
    bind_value,
    order_expression,
    parse_key_string,
    span_condition,
)
from cdc_sync.source.plan import AggregatePlan, ChildPlan, Column, ResourcePlan

if TYPE_CHECKING:
    from typing import TypeAlias

    AnySelect: TypeAlias = sa.Select[*tuple[Any, ...]]

PARENT_KEY_PREFIX = "cdc_parent_key_"
"""Labels of a child row's parent-key values (dropped before compose sees the row)."""


def order_by(columns: Sequence[Column], kinds: Sequence[KeyKind], dialect: str) -> list[Column]:
    return [order_expression(c, k, dialect) for c, k in zip(columns, kinds, strict=True)]


def rows_select(plan: ResourcePlan, dialect: str, *, since: Any = None,
                keys: Sequence[str] | None = None, span: KeySpan | None = None,
                digests: bool = False) -> AnySelect:
    """The resource's rows with every labelled value, in key order (`span`: those keys only;
    `digests`: each row's md5 last, labelled DIGEST_LABEL)."""
    columns = [column.label(label) for label, column in plan.values.items()]
    if digests:
        columns.append(row_md5(list(plan.values.values()), dialect).label(DIGEST_LABEL))
    stmt = sa.select(*columns).select_from(plan.from_clause)
    stmt = _filtered(stmt, plan, since=since, keys=keys, dialect=dialect)
    if span is not None:
        stmt = stmt.where(span_condition(plan.key, plan.kinds, dialect, span))
    return stmt.order_by(*order_by(plan.key, plan.kinds, dialect))


def child_select(plan: ResourcePlan, child: ChildPlan, dialect: str, *, since: Any = None,
                 keys: Sequence[str] | None = None, span: KeySpan | None = None,
                 digests: bool = False) -> AnySelect:
    """All of one child collection's rows (for every parent at once), in parent-key order
    (`digests`: each row's number after its values, digests.row_number)."""
    extra = [child_number(child, dialect).label(DIGEST_LABEL)] if digests else []
    stmt = _child_rows(plan, child, child.values, dialect, since=since, keys=keys, span=span,
                       extra=extra)
    tie_breakers = [child.relation.column(name) for name in child.relation.primary_key]
    return stmt.order_by(
        *order_by(child.parent_key, plan.kinds, dialect),
        *child.order_by,
        *(c for c in tie_breakers if c is not None),
    )


def aggregate_select(plan: ResourcePlan, aggregate: AggregatePlan, dialect: str, *,
                     since: Any = None, keys: Sequence[str] | None = None,
                     span: KeySpan | None = None, digests: bool = False,
                     values: bool = True) -> AnySelect:
    """One grouped row per parent with child rows: its aggregate fields, in parent-key order
    (`digests`: the md5 of the grouped values after them; `values=False`: the md5 alone)."""
    child = aggregate.child
    extra = ([row_md5(list(aggregate.values.values()), dialect).label(DIGEST_LABEL)]
             if digests or not values else [])
    stmt = _child_rows(plan, child, aggregate.values if values else {}, dialect, since=since,
                       keys=keys, span=span, extra=extra)
    whole = since is None and keys is None and span is None
    stmt = _sorted_if_whole(stmt, child, dialect, whole=whole).group_by(*child.parent_key)
    return stmt.order_by(*order_by(child.parent_key, plan.kinds, dialect))


def child_number(child: ChildPlan, dialect: str) -> Column:
    """A child row's number (digests.row_number): its values, and what orders it among its
    parent's rows (a changed order changes the record; a summed digest does not see order)."""
    return row_number([*child.values.values(), *child.order_by], dialect)


def key_digest_select(plan: ResourcePlan, dialect: str, *,
                      span: KeySpan | None = None) -> AnySelect:
    """Each row's key columns (by their names) and md5, in key order: a digest-only read."""
    labelled = [c.label(n) for n, c in zip(plan.key_names, plan.key, strict=True)]
    md5 = row_md5(list(plan.values.values()), dialect).label(DIGEST_LABEL)
    stmt = _filtered(sa.select(*labelled, md5).select_from(plan.from_clause), plan)
    if span is not None:
        stmt = stmt.where(span_condition(plan.key, plan.kinds, dialect, span))
    return stmt.order_by(*order_by(plan.key, plan.kinds, dialect))


def child_digest_select(plan: ResourcePlan, child: ChildPlan, dialect: str, *,
                        span: KeySpan | None = None) -> AnySelect:
    """Per parent with child rows: how many, and the sum of their numbers (digests.py), in
    parent-key order."""
    # The sum as the database's text of it: the digest text is that text, so no driver builds
    # a Decimal of it, nor Python an int (digests.summary).
    summed: list[Column] = [
        sa.func.count().label(COUNT_LABEL),
        sa.cast(sa.func.sum(child_number(child, dialect)), sa.String).label(SUM_LABEL),
    ]
    stmt = _child_rows(plan, child, {}, dialect, since=None, keys=None, span=span,
                       extra=summed)
    stmt = _sorted_if_whole(stmt, child, dialect, whole=span is None)
    stmt = stmt.group_by(*child.parent_key)
    return stmt.order_by(*order_by(child.parent_key, plan.kinds, dialect))


def _sorted_if_whole(stmt: AnySelect, child: ChildPlan, dialect: str, *,
                     whole: bool) -> AnySelect:
    """`stmt`, grouping every row of the child's table, asked to group by sorting a scan."""
    if whole and dialect in ("mysql", "mariadb") and not _stored_by_parent(child):
        # The whole table, grouped: MySQL/MariaDB would walk the parent-key index and fetch
        # each row from the clustered index, one lookup per row; a scan sorted by the parent
        # key costs a third less (order lines at 1M orders: 3.3 against 4.9 s of the server's
        # CPU; bench/README.md). A slice or a read by key reads key ranges: the index serves.
        return stmt.prefix_with("SQL_BIG_RESULT")
    return stmt


def _stored_by_parent(child: ChildPlan) -> bool:
    """Whether the child's table is stored in parent-key order: its primary key (InnoDB's
    clustered index) starts with the parent-key columns, so reading it in order sorts nothing."""
    leading = child.relation.primary_key[: len(child.parent_key)]
    if len(leading) < len(child.parent_key):
        return False
    stored = [child.relation.column(name) for name in leading]
    return all(column is not None and column.compare(parent)
               for column, parent in zip(stored, child.parent_key, strict=True))


def _child_rows(plan: ResourcePlan, child: ChildPlan, labelled: Mapping[str, Column],
                dialect: str, *, since: Any, keys: Sequence[str] | None,
                span: KeySpan | None, extra: Sequence[Column] = ()) -> AnySelect:
    """A child table's `labelled` values, `extra` columns, then its parent key, for the
    parents asked for."""
    parent_labels = [c.label(f"{PARENT_KEY_PREFIX}{i}") for i, c in enumerate(child.parent_key)]
    values = [column.label(label) for label, column in labelled.items()]
    # The parent key goes last: the merge zips the value labels with a row and stops there.
    stmt = sa.select(*values, *extra, *parent_labels).select_from(child.from_clause)
    stmt = stmt.where(*(c.is_not(None) for c in child.parent_key))
    if child.where is not None:
        stmt = stmt.where(child.where)
    if since is not None or keys is not None:
        stmt = stmt.where(parent_exists(plan, child, since=since, keys=keys, dialect=dialect))
    if span is not None:
        # On the child's own parent-key columns: the index a foreign key usually has serves it.
        stmt = stmt.where(span_condition(child.parent_key, plan.kinds, dialect, span))
    return stmt


def parent_exists(plan: ResourcePlan, child: ChildPlan, *, since: Any,
                   keys: Sequence[str] | None, dialect: str) -> sa.ColumnElement[bool]:
    # A semi-join: only children of parents that changed (or were asked for), in one query.
    parent = plan.relation.aliased("cdc_parent")
    parent_key = [_must(parent.column(name)) for name in plan.key_names]
    conditions: list[sa.ColumnElement[bool]] = []
    if since is not None and plan.spec.cursor is not None:
        conditions.append(_must(parent.column(plan.spec.cursor)) >= since)
    if keys is not None:
        conditions.append(key_in(parent_key, keys, dialect))
    if dialect == "postgresql" and len(parent_key) == 1 and keys is None and conditions:
        return _parent_key_array(parent.from_clause, parent_key[0], child.parent_key[0],
                                 conditions)
    exists = sa.select(sa.literal(1)).select_from(parent.from_clause).where(
        *(p == c for p, c in zip(parent_key, child.parent_key, strict=True)), *conditions
    )
    return exists.exists()


def _parent_key_array(parents: sa.FromClause, parent_key: Column, child_key: Column,
                      conditions: Sequence[sa.ColumnElement[bool]]) -> sa.ColumnElement[bool]:
    """`child_key = ANY(ARRAY(SELECT parent_key FROM parents WHERE ...))`: the semi-join as an
    array of the changed parents' keys, collected once, then probed in the child's index.

    PostgreSQL planned the EXISTS from the whole table's costs: 1,000 changed orders' coupons
    (104 rows) by a hash join over all 100k coupons, 102k rows read, 30-38 ms at 1M orders;
    the array is an index scan of the coupons by order id, 104 rows read, 2 ms
    (bench/README.md, "An incremental cycle's shop plans"). The same rows: a child row whose
    key equals one of the parents' keys, compared by the same `=`."""
    keys = sa.select(parent_key).select_from(parents).where(*conditions).scalar_subquery()
    return child_key == sa.any_(sa.func.ARRAY(keys))


def _must(column: Column | None) -> Column:
    assert column is not None  # names were resolved on the same relation when planning
    return column


def _filtered(stmt: AnySelect, plan: ResourcePlan, *, since: Any = None,
              keys: Sequence[str] | None = None, dialect: str | None = None) -> AnySelect:
    stmt = stmt.where(*(c.is_not(None) for c in plan.key))
    if plan.where is not None:
        stmt = stmt.where(plan.where)
    if since is not None and plan.cursor is not None:
        stmt = stmt.where(plan.cursor >= since)
    if keys is not None:
        stmt = stmt.where(key_in(plan.key, keys, dialect))
    return stmt


def key_in(columns: Sequence[Column], keys: Sequence[str],
           dialect: str | None = None) -> sa.ColumnElement[bool]:
    """`key IN (...)` for state keys (key_string form), bound in the columns' own types.

    On PostgreSQL a one-column key is `key = ANY(:array)`: one parameter instead of one per
    key. The server runs both as the same index scan, but SQLAlchemy and psycopg spent ~8 ms
    per 1,000 keys expanding, converting and binding a thousand placeholders (the deletion
    walk of a reconciliation slice checks 70k keys per slice at 1M orders). On MariaDB/MySQL
    integer keys are written into the SQL as numbers (no parameter at all)."""
    width = len(columns)
    rows = _bound_keys(columns, keys)
    compared = [comparable(c) for c in columns] if rows else []
    element = _array_element(compared[0].type) if width == 1 and rows else None
    if isinstance(element, sa.Integer) and dialect not in ("mysql", "mariadb"):
        # No unsigned BIGINT here: a larger key cannot exist, and would not bind.
        rows = [r for r in rows if INTEGER_LOWEST <= r[0] <= INTEGER_HIGHEST]
    if not rows:
        return sa.false()
    if isinstance(element, sa.Integer) and dialect == "postgresql":
        # One string parameter, the keys joined by commas: psycopg dumped a list of ints
        # element by element (a regex each), half of a walk page's client CPU. Digits only.
        # Split by string_to_array, not cast from the array's text: both are immutable, so the
        # planner folds the array into a constant once, where array_in (stable) was run again
        # for every row a Filter tests (the delete guard's sample of 400 categories: a seq
        # scan parsing the 400 keys 500 times, 36 ms; folded 0.4 ms). BIGINT[] whatever the
        # column's width: a key beyond an INTEGER column (a typo given to `preview --key`)
        # then matches nothing instead of failing the cast, and PostgreSQL compares int2/int4
        # columns with int8 values through the same index.
        text = ",".join([str(r[0]) for r in rows])
        parts = sa.func.string_to_array(sa.literal(text, sa.Text()), sa.literal_column("','"))
        numbers = sa.cast(parts, postgresql.ARRAY(sa.BigInteger()))
        return compared[0] == sa.any_(numbers)
    if element is not None and dialect == "postgresql":
        array = sa.literal([r[0] for r in rows], postgresql.ARRAY(element))
        return compared[0] == sa.any_(array)
    if isinstance(element, sa.Integer) and dialect in ("mysql", "mariadb"):
        # Integers written into the IN list when the statement runs: PyMySQL escaped each
        # of 1,000 parameters in Python (client CPU of a walk's page 4.4 -> 2.8 ms).
        return compared[0].in_(sa.bindparam(None, [r[0] for r in rows], element,
                                            expanding=True, literal_execute=True))
    if width == 1:
        return compared[0].in_([r[0] for r in rows])
    return sa.tuple_(*compared).in_([tuple(r) for r in rows])


def _bound_keys(columns: Sequence[Column], keys: Sequence[str]) -> list[list[Any]]:
    """Each state key's parts bound in its columns' Python types; keys of another shape, or
    whose parts cannot be of those types, are left out (they cannot exist)."""
    if len(columns) == 1:
        type_ = columns[0].type
        found = [bind_value(key, type_) for key in keys]
        return [[value] for value in found if value is not None]
    rows = []
    for key in keys:
        try:
            parts = parse_key_string(key, len(columns))
        except ValueError:
            continue
        values = [bind_value(p, c.type) for p, c in zip(parts, columns, strict=True)]
        if None not in values:
            rows.append(values)
    return rows


def _array_element(type_: sa.types.TypeEngine[Any]) -> sa.types.TypeEngine[Any] | None:
    """The element type of an array of these keys: the column's kind without its length or
    scale (a cast to VARCHAR(20)[] or NUMERIC(8,2)[] would cut a longer key into one that
    exists); None for other types (they keep IN)."""
    if isinstance(type_, sa.Integer) and not isinstance(type_, sa.Boolean):
        return type(type_)()
    if isinstance(type_, sa.Numeric) and not isinstance(type_, sa.Float):
        return sa.Numeric()
    if isinstance(type_, sa.String) and not isinstance(type_, sa.Enum):
        return sa.String()
    return None


def comparable(column: Column) -> Column:
    """The column as a bound key compares with it: itself, or its text when its type is unknown.

    A `query` column whose type the driver does not report (SQLite; dates) gets its key bound
    as text; compared as it is, PostgreSQL refuses (`integer = character varying`) and SQLite
    finds nothing (a computed column has no affinity, so 5 <> '5'). Its text is what state
    keeps, the same text its key order sorts by.
    """
    if isinstance(column.type, sa.types.NullType):
        return sa.cast(column, sa.String)
    return column


def existing_select(plan: ResourcePlan, keys: Sequence[str],
                    dialect: str | None = None) -> AnySelect:
    """Which of these keys the resource still yields (its where and joins apply)."""
    labelled = [c.label(n) for n, c in zip(plan.key_names, plan.key, strict=True)]
    stmt = sa.select(*labelled).select_from(plan.from_clause).distinct()
    return _filtered(stmt, plan).where(key_in(plan.key, keys, dialect))


def high_water_select(plan: ResourcePlan) -> AnySelect | None:
    """The largest cursor value of the resource's rows (no row: none), or None when it has
    no cursor.

    The last value in cursor order, not MAX(cursor): MariaDB reads MAX from the cursor's
    index end only without a WHERE, and the key's IS NOT NULL is one, so it scanned the whole
    index (100k handler reads per orders-based resource per cycle at 100k orders); ordered,
    it reads the index backwards and stops at the first row that passes (PostgreSQL plans
    MAX that way itself).
    """
    if plan.cursor is None:
        return None
    stmt = sa.select(plan.cursor).select_from(plan.from_clause).where(plan.cursor.is_not(None))
    return _filtered(stmt, plan).order_by(plan.cursor.desc()).limit(1)


def duplicate_key_select(plan: ResourcePlan) -> AnySelect:
    """One key that more than one row has (joins included: a join may repeat rows)."""
    count = sa.func.count().label("cdc_rows")
    stmt = sa.select(*plan.key, count).select_from(plan.from_clause)
    stmt = _filtered(stmt, plan).group_by(*plan.key)
    return stmt.having(sa.func.count() > 1).limit(1)


def repeated_child_select(child: ChildPlan) -> AnySelect | None:
    """One child row that its joins repeat, with how often (None: no joins or no key)."""
    if not child.spec.joins or not child.relation.primary_key:
        return None
    key = [_must(child.relation.column(name)) for name in child.relation.primary_key]
    stmt = sa.select(*key, sa.func.count().label("cdc_rows")).select_from(child.from_clause)
    # Only the rows the child reads: a row its `where` leaves out repeats nothing (variations
    # are posts beside the products whose several _price rows are never read as options).
    stmt = stmt.where(*(c.is_not(None) for c in child.parent_key))
    if child.where is not None:
        stmt = stmt.where(child.where)
    return stmt.group_by(*key).having(sa.func.count() > 1).limit(1)


def probe_select(from_clause: sa.FromClause, *columns: Column,
                 where: sa.ColumnElement[bool] | sa.TextClause | None = None) -> AnySelect:
    """A statement that compiles the user's SQL but reads no rows (LIMIT 0)."""
    stmt = sa.select(*(columns or (sa.literal(1),))).select_from(from_clause)
    if where is not None:
        stmt = stmt.where(where)
    return stmt.limit(0)


def any_key_select(plan: ResourcePlan) -> AnySelect:
    """One key of the resource, any (no order: the database stops at the first row)."""
    stmt = sa.select(*plan.key).select_from(plan.from_clause)
    return _filtered(stmt, plan).limit(1)


def any_child_select(child: ChildPlan) -> AnySelect:
    """One row of a child collection, any parent's (its where applies)."""
    stmt = sa.select(sa.literal(1)).select_from(child.from_clause)
    stmt = stmt.where(*(c.is_not(None) for c in child.parent_key))
    if child.where is not None:
        stmt = stmt.where(child.where)
    return stmt.limit(1)


def keys_select(plan: ResourcePlan, dialect: str, limit: int) -> AnySelect:
    """The first `limit` keys in key order."""
    stmt = sa.select(*plan.key).select_from(plan.from_clause)
    stmt = _filtered(stmt, plan).order_by(*order_by(plan.key, plan.kinds, dialect))
    return stmt.limit(limit)


def span_keys_select(plan: ResourcePlan, dialect: str, span: KeySpan) -> AnySelect:
    """The keys within `span`, in key order (its where and joins apply, as existing_select's):
    which of state's keys in a reconciliation slice's range the shop still yields."""
    stmt = sa.select(*plan.key).select_from(plan.from_clause)
    stmt = _filtered(stmt, plan).where(span_condition(plan.key, plan.kinds, dialect, span))
    return stmt.order_by(*order_by(plan.key, plan.kinds, dialect))


def span_end_select(plan: ResourcePlan, dialect: str, after: str | None, size: int) -> AnySelect:
    """The `size`-th key after `after` in key order (no row: fewer keys are left)."""
    stmt = sa.select(*plan.key).select_from(plan.from_clause)
    stmt = _filtered(stmt, plan).where(
        span_condition(plan.key, plan.kinds, dialect, KeySpan(after=after)))
    stmt = stmt.order_by(*order_by(plan.key, plan.kinds, dialect))
    return stmt.offset(size - 1).limit(1)
