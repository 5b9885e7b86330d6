"""ShopSource: the shop database as the rest of cdc-sync sees it (read-only, streamed).

It plans each resource once (reflecting only the tables the mapping names), streams composed
records with one query per resource plus one per child collection, and answers the engine's
questions: the cursor's high-water mark, and which keys still exist. The derived resources
(guest customers, deleted products) are planned and read by `Deriving` (deriving.py); the
changes in the tables a record reads are followed by `Tracking` (`source.tracking`, tracking.py).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from cdc_sync.core.catalogue import Catalogue, Entry
from cdc_sync.core.records import Readings, RowComposer
from cdc_sync.core.resources import Resource, SourceRecord
from cdc_sync.errors import Problem
from cdc_sync.mapping.labels import key_string
from cdc_sync.mapping.loader import LoadedMapping
from cdc_sync.mapping.model import ResourceSpec
from cdc_sync.source.check import Checker, spec_problems
from cdc_sync.source.connect import READ_FIX as _FIX
from cdc_sync.source.connect import reading
from cdc_sync.source.context import Planned, ShopContext
from cdc_sync.source.derived import DerivedPlan
from cdc_sync.source.deriving import Deriving
from cdc_sync.source.digests import digests_supported
from cdc_sync.source.keys import KeySpan
from cdc_sync.source.plan import ResourcePlan, plan_resource
from cdc_sync.source.query import (
    any_child_select,
    any_key_select,
    existing_select,
    high_water_select,
    keys_select,
    span_end_select,
    span_keys_select,
)
from cdc_sync.source.reads import digest_rows, values_rows
from cdc_sync.source.reflect import ShopSchema
from cdc_sync.source.stream import (
    DEFAULT_BATCH,
    SourceRow,
    stream,
)
from cdc_sync.source.tracking import Tracking


class ShopSource:
    """Reads the shop through a mapping. Never writes; never disposes the engine it was handed."""

    def __init__(self, engine: sa.Engine, mapping: LoadedMapping, *,
                 batch_size: int = DEFAULT_BATCH, digests: bool = True) -> None:
        self._engine = engine
        # False: marks are made in Python (CDC_SYNC_SOURCE_DIGESTS=off, digests.py)
        self._digests = digests
        self._mapping = mapping
        self.catalogue = Catalogue(mapping.spec)
        self._batch = batch_size
        self._schema = ShopSchema(engine)
        self._plans: dict[str, Planned] = {}
        self._context = ShopContext(engine, mapping, self._schema, self.catalogue, batch_size,
                                    self._plan)
        # Guest customers and deleted products, built from the direct resources' plans.
        self._deriving = Deriving(self._context)
        # Changes in the tables a record reads (cursors on joins and children, watches).
        self.tracking = Tracking(self._context)

    def with_mapping(self, mapping: LoadedMapping) -> ShopSource:
        """The same shop read through another mapping (a held change's last applied one)."""
        return ShopSource(self._engine, mapping, batch_size=self._batch,
                          digests=self._digests)

    # -- what the mapping holds ---------------------------------------------------------

    @property
    def mapping(self) -> LoadedMapping:
        return self._mapping

    def spec(self, resource: Resource) -> ResourceSpec | None:
        """The enabled mapping of a direct resource (None: unmapped, disabled or derived)."""
        return self.catalogue.spec(resource)

    def mapped_resources(self) -> list[Resource]:
        """The resources this mapping produces, in Metrilo's import order (the catalogue's)."""
        return self.catalogue.resources()

    # -- check ------------------------------------------------------------------------

    def check(self, *, data: bool = True) -> list[Problem]:
        """Every problem of the mapping against this database, at once. Reads only.

        `data=False` leaves out what depends on the rows rather than the mapping (key
        uniqueness, a full scan): the check `sync` runs before every start.
        """
        with reading("checking the mapping against the shop database", _FIX, self._engine):
            return self._check(data)

    def _check(self, data: bool) -> list[Problem]:
        problems = list(spec_problems(self._mapping))
        checker = Checker(self._engine, self._mapping, data)
        unfit: set[Resource] = set()
        # Direct resources first: a derived one is built from bases that may come after it
        # in import order (guest customers from orders), and must know whether they fit.
        for entry in (e for e in self.catalogue if not e.derived):
            plan, found = self._partial_plan(entry.resource.value)
            if plan is not None:
                found = [*found, *checker.plan_problems(entry.resource, plan,
                                                        complete=not found)]
                found += self.tracking.planned(entry.resource, plan)[1]
            if found:
                unfit.add(entry.resource)
            problems.extend(found)
        for entry in (e for e in self.catalogue if e.derived):
            problems.extend(self._check_derived(entry, checker, unfit))
        return list(dict.fromkeys(problems))

    def _check_derived(self, entry: Entry, checker: Checker,
                       unfit: set[Resource]) -> list[Problem]:
        resource = entry.resource
        derived, problems = self._deriving.derive(resource)
        # A derived query is built from its bases' mapping (orders' where, joins...): when a
        # base does not fit, that problem is already reported; its failing probe here would
        # report the same mistake a second time.
        if derived is not None and not set(entry.built_from) & unfit:
            probe = derived.select(self._schema.dialect).limit(0)
            problems = [*problems, *checker.run(probe, (resource.value,), "its query fails")]
        return problems

    # -- reading ----------------------------------------------------------------------

    def records(self, resource: Resource, *, since: Any | None = None,
                keys: Sequence[str] | None = None,
                span: KeySpan | None = None) -> Iterator[SourceRecord]:
        """Composed records in key order; `since`: changed rows only; `keys`: just these;
        `span`: the keys in this range."""
        return self.readings(resource, since=since, keys=keys, span=span).records()

    def readings(self, resource: Resource, *, since: Any | None = None,
                 keys: Sequence[str] | None = None, span: KeySpan | None = None,
                 late_values: bool = False) -> Readings:
        """Source rows in key order with their composer (see `records` for the arguments;
        `span`: the keys of one reconciliation slice, direct resources only; `late_values`:
        see `rows`)."""
        tz = self._mapping.spec.source_timezone
        spec = self.spec(resource)
        if spec is not None:
            rows = self.rows(resource, since=since, keys=keys, span=span,
                             late_values=late_values)
            return Readings(rows, RowComposer(resource, spec.fields, spec.children, tz))
        if self._deriving.active(resource):
            return self._deriving.readings(resource, since=since, keys=keys)
        return Readings(iter(()), RowComposer(resource, {}, {}, tz))

    def digest_readings(self, resource: Resource, *,
                        span: KeySpan | None = None) -> Readings | None:
        """The resource's digest-only rows (`digests`) with the composer of its rows read
        again with values; None where rows carry no digests (derived resources, digests off
        or not computed by this database)."""
        spec = self.spec(resource)
        if spec is None or not self.digesting:
            return None
        return Readings(self.digests(resource, span=span),
                        RowComposer(resource, spec.fields, spec.children,
                                    self._mapping.spec.source_timezone))

    def changed_guest_orders(self, since: Any) -> Readings | None:
        """Every order changed since `since` as a guest row, not merged (source/deriving.py);
        None when guests are not derived or orders have no cursor."""
        return self._deriving.changed_guest_orders(since)

    def inputs_checksum(self, resource: Resource) -> str | None:
        """The checksum of every row a derived resource is derived from (guests: the orders'
        columns the guest rows select, the customers' emails), computed by the database in
        one aggregate per input; None where the database computes no row numbers (SQLite,
        CDC_SYNC_SOURCE_DIGESTS=off) or the resource has no checksum (source/deriving.py)."""
        return self._deriving.inputs_checksum(resource) if self.digesting else None

    def deleted_products_of(self, order_keys: Sequence[str]) -> Readings:
        """The deleted products the lines of these orders name (pass <= 1000 keys), in key
        order: one query (source/deriving.py)."""
        return self._deriving.deleted_products_of(order_keys)

    def rows(self, resource: Resource, *, since: Any | None = None,
             keys: Sequence[str] | None = None, span: KeySpan | None = None,
             late_values: bool = False) -> Iterator[SourceRow]:
        """Source rows (labelled values, children merged) of a direct resource, in key order;
        with the database's digests (`SourceRow.digest`) where it computes them.
        `late_values`: the rows go on to be composed elsewhere (a compose worker), so a full
        read or a slice may leave their values to be converted there (reads.values_rows)."""
        return values_rows(self._engine, self._plan_or_raise(resource.value),
                           self._schema.dialect, batch=self._batch, since=since, keys=keys,
                           span=span, digests=self.digesting, late_values=late_values)

    def digests(self, resource: Resource, *, span: KeySpan | None = None) -> Iterator[SourceRow]:
        """Each row's key and digest only (a direct resource; `digesting` must be true), in
        key order: a no-change full read without moving any value (see reads.py)."""
        return digest_rows(self._engine, self._plan_or_raise(resource.value),
                           self._schema.dialect, batch=self._batch, span=span)

    @property
    def digesting(self) -> bool:
        """Whether rows of direct resources carry the database's digests (digests.py)."""
        return self._digests and digests_supported(self._schema.dialect)

    def cursor_high_water(self, resource: Resource) -> Any | None:
        """The largest cursor value of the resource (derived ones follow the orders' cursor), or
        None (query.high_water_select)."""
        entry = self.catalogue.entry(resource)
        if entry is None:
            return None
        name = entry.cursor_of.value
        stmt = high_water_select(self._plan_or_raise(name))
        if stmt is None:
            return None
        with reading(f"reading the cursor of {name}", _FIX, self._engine), \
                self._engine.connect() as conn:
            return conn.execute(stmt).scalar()

    def existing_keys(self, resource: Resource, keys: Sequence[str]) -> set[str]:
        """Which of these state keys the source still yields (one query; pass <= 1000 keys)."""
        for _keys, existing in self.existing_in_pages(resource, [keys]):
            return existing
        return set()

    def existing_in_pages(self, resource: Resource, pages: Iterable[Sequence[str]],
                          ) -> Iterator[tuple[Sequence[str], set[str]]]:
        """Each page of state keys (<= 1000 keys; the deletion walks' pages) with those of
        them the source still yields: a query a page, all on one connection (a connection a
        page cost a pool checkout and its ping each, ~15% of a slice's walk)."""
        doing = f"looking up {resource.value} keys"
        with reading(doing, _FIX, self._engine), self._engine.connect() as conn:
            for keys in pages:
                yield keys, self._existing(conn, resource, keys)

    def _existing(self, conn: sa.Connection, resource: Resource,
                  keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        if self._deriving.active(resource):
            derived = self._deriving.plan_or_raise(resource)
            stmt = derived.select(self._schema.dialect, keys=keys)
            width = 1
        elif self.spec(resource) is not None:
            plan = self._plan_or_raise(resource.value)
            stmt, width = existing_select(plan, keys, self._schema.dialect), len(plan.key)
        else:
            return set()
        result = conn.execute(stmt)
        if width == 1:
            return {key_string([value]) for value in result.scalars().all()}
        return {key_string(list(row[:width])) for row in result.all()}

    def integer_key(self, resource: Resource) -> bool:
        """Whether a direct resource's key is one integer column: the shop sorts it as numbers,
        and state finds its keys by number (`StateStore.iter_live_numbers`)."""
        if self.spec(resource) is None or self._deriving.active(resource):
            return False
        plan = self._plan_or_raise(resource.value)
        type_ = plan.key[0].type
        return (len(plan.key) == 1 and isinstance(type_, sa.Integer)
                and not isinstance(type_, sa.Boolean))

    def keys_in_span(self, resource: Resource, span: KeySpan) -> Generator[Any, None, None]:
        """The keys of a direct resource within `span`, in key order, as the database gives
        them (one-column keys): one statement, streamed (the span's integer bounds are written
        into it, so it is read straight from the driver)."""
        plan = self._plan_or_raise(resource.value)
        rows = stream(self._engine, span_keys_select(plan, self._schema.dialect, span),
                      doing=f"reading {resource.value} keys", batch=self._batch)
        try:
            for row in rows.rows:
                yield row[0]
        finally:
            rows.close()

    def span_end(self, resource: Resource, after: str | None, size: int) -> str | None:
        """The key `size` keys after `after` (a direct resource, in key order), or None when
        fewer are left: where a reconciliation slice of `size` keys ends."""
        plan = self._plan_or_raise(resource.value)
        stmt = span_end_select(plan, self._schema.dialect, after, max(size, 1))
        with reading(f"reading {resource.value} keys", _FIX, self._engine), \
                self._engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else key_string(list(row[:len(plan.key)]))

    def has_rows(self, resource: Resource) -> bool:
        """Whether the resource's source (a direct one) yields any row at all."""
        if self.spec(resource) is None:
            return False
        stmt = any_key_select(self._plan_or_raise(resource.value))
        with reading(f"reading {resource.value} keys", _FIX, self._engine), \
                self._engine.connect() as conn:
            return conn.execute(stmt).first() is not None

    def empty_children(self, resource: Resource) -> list[str]:
        """The children of a direct resource with a `where` or a `query` that read no row."""
        plan = self._plan_or_raise(resource.value)
        children = {c.name: c for c in plan.children.values()}
        children.update((a.child.name, a.child) for a in plan.aggregates.values())
        filtered = [c for c in children.values()
                    if c.where is not None or c.spec.query is not None]
        with reading(f"reading {resource.value} children", _FIX, self._engine), \
                self._engine.connect() as conn:
            return [c.name for c in filtered
                    if conn.execute(any_child_select(c)).first() is None]

    def sample_keys(self, resource: Resource, limit: int) -> list[str]:
        """The first `limit` keys in key order (for previews)."""
        if self._deriving.active(resource):
            stmt = self._deriving.plan_or_raise(resource).select(self._schema.dialect).limit(limit)
            width = 1
        elif self.spec(resource) is not None:
            plan = self._plan_or_raise(resource.value)
            stmt, width = keys_select(plan, self._schema.dialect, limit), len(plan.key)
        else:
            return []
        with reading(f"reading {resource.value} keys", _FIX, self._engine), \
                self._engine.connect() as conn:
            return [key_string(list(row[:width])) for row in conn.execute(stmt)]

    def count(self, resource: Resource, cap: int) -> int:
        """How many rows the resource reads, counted up to `cap` (for `init`'s summary)."""
        if self._deriving.active(resource):
            stmt = self._deriving.plan_or_raise(resource).select(self._schema.dialect).limit(cap)
        elif self.spec(resource) is not None:
            stmt = keys_select(self._plan_or_raise(resource.value), self._schema.dialect, cap)
        else:
            return 0
        counted = sa.select(sa.func.count()).select_from(stmt.subquery())
        with reading(f"counting {resource.value}", _FIX, self._engine), \
                self._engine.connect() as conn:
            return int(conn.execute(counted).scalar_one())

    # -- planning ---------------------------------------------------------------------

    def _derived_or_raise(self, resource: Resource) -> DerivedPlan:
        return self._deriving.plan_or_raise(resource)

    def _plan(self, name: str) -> Planned:
        """The plan of a resource that fits (None with its problems when it does not)."""
        plan, problems = self._partial_plan(name)
        return (None if problems else plan), problems

    def _partial_plan(self, name: str) -> Planned:
        """What of the resource resolves, even with problems (check tests the rest)."""
        if name not in self._plans:
            if not self._plans:  # the first plan: every named table in one catalog pass
                with reading("reading the shop's schema", _FIX, self._engine):
                    self._schema.prefetch(self._named_tables())
            spec: ResourceSpec = getattr(self._mapping.spec, name)
            with reading(f"reading the schema of {name}", _FIX, self._engine):
                self._plans[name] = plan_resource(self._schema, self._mapping, name, spec)
        return self._plans[name]

    def _named_tables(self) -> Iterator[str]:
        """The tables the direct resources name: their own, joined, children's, watched."""
        for entry in self.catalogue:
            spec = entry.spec
            if spec is None or entry.derived:
                continue
            children = list(spec.children.values())
            yield from (t for t in (spec.table, *(w.table for w in spec.watch),
                                    *(c.table for c in children)) if t)
            yield from (j.table for j in [*spec.joins, *(j for c in children for j in c.joins)])

    def _plan_or_raise(self, name: str) -> ResourcePlan:
        return self._context.plan_or_raise(name)
