"""Incremental mode: cursor reads with an overlap, and the rolling reconciliation behind it."""

from __future__ import annotations

import json
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from cdc_sync.core.report import CycleReport
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.demo import mutate, schema
from cdc_sync.mapping.loader import parse_mapping
from cdc_sync.source import ShopSource, connect_shop
from cdc_sync.state import StateStore, Status
from cdc_sync.state.engine import create_state_engine
from helpers.backends import COMBINATIONS
from helpers.statements import Statements
from helpers.world import World
from helpers.worlds import world_fixture, world_on

HOUR_LATER = 3700.0  # past sync.full_reconcile_minutes: the window's rest is read at once
LATE_ORDER = 190  # beyond the first reconciliation slices of the 200 demo orders


def _later(seconds: float) -> float:
    return time.time() + seconds


world = world_fixture()


any_world = world_fixture(COMBINATIONS)


def _updated_at(world: World, order_id: int) -> datetime:
    with world.shop.connect() as conn:
        value = conn.execute(sa.select(schema.orders.c.updated_at)
                             .where(schema.orders.c.id == order_id)).scalar_one()
    assert isinstance(value, datetime)
    return value


def test_an_incremental_cycle_reads_only_what_changed_and_overlaps_the_mark(
    any_world: World,
) -> None:
    world = any_world
    world.sync()
    # An order beyond this cycle's reconciliation slice (the window's first: orders 1-4), so
    # that the slice cannot send it in the cursor's place.
    mutate.set_order_status(world.shop, LATE_ORDER, 5)
    second = world.sync()
    orders = second.resources[Resource.ORDERS]
    assert orders.mode == "incremental"
    assert orders.counts.changed == 1
    # The change, and the old mark's row inside the overlap (beside the reconciliation slice).
    assert orders.counts.scanned - orders.reconciled <= 2
    assert world.held("orders", str(LATE_ORDER))["status"] == "refunded"

    mark = _updated_at(world, LATE_ORDER)
    # Written by writers whose clock is behind:
    world.write(schema.orders, 2, status=5, updated_at=mark - timedelta(seconds=60))  # in overlap
    world.write(schema.orders, 3, status=5, updated_at=mark - timedelta(hours=2))  # beyond it
    third = world.sync()
    assert third.resources[Resource.ORDERS].mode == "incremental"
    assert world.held("orders", "2")["status"] == "refunded"
    assert world.held("orders", "3")["status"] != "refunded", "read beyond the overlap"

    reconciled = world.sync(clock=lambda: _later(HOUR_LATER))
    assert reconciled.resources[Resource.ORDERS].mode == "incremental"
    assert reconciled.resources[Resource.ORDERS].reconciled > 150  # the rest of the window
    # Order 3 changed after the window's first slice read it: the next window's first slice.
    assert world.held("orders", "3")["status"] != "refunded"
    world.sync(clock=lambda: _later(HOUR_LATER + 60))
    assert world.held("orders", "3")["status"] == "refunded"
    assert world.differences() == []


def test_a_child_only_change_is_caught_by_the_reconciliation(world: World) -> None:
    world.sync()
    with world.shop.begin() as conn:  # an order line edited, the order's updated_at untouched
        line = conn.execute(sa.select(sa.func.min(schema.order_lines.c.id))
                            .where(schema.order_lines.c.order_id == LATE_ORDER)).scalar_one()
        conn.execute(schema.order_lines.update().where(schema.order_lines.c.id == line)
                     .values(quantity=77))
    incremental = world.sync()
    assert incremental.resources[Resource.ORDERS].counts.sent == 0
    order = str(LATE_ORDER)
    assert 77 not in [p["quantity"] for p in world.held("orders", order)["products"]]

    late = world.sync(clock=lambda: _later(HOUR_LATER))
    assert late.resources[Resource.ORDERS].counts.changed == 1
    assert 77 in [p["quantity"] for p in world.held("orders", order)["products"]]
    assert world.differences() == []


def test_deletes_wait_for_the_reconciliation(world: World) -> None:
    world.sync()
    mutate.delete_order(world.shop, LATE_ORDER)
    order = str(LATE_ORDER)
    incremental = world.sync()
    assert incremental.resources[Resource.ORDERS].counts.gone == 0
    assert world.rows(Resource.ORDERS, [order])[order].status is Status.SYNCED

    late = world.sync(clock=lambda: _later(HOUR_LATER))
    assert late.resources[Resource.ORDERS].counts.gone == 1
    assert world.rows(Resource.ORDERS, [order])[order].status is Status.GONE


def test_a_guest_customer_keeps_its_first_order_date_in_incremental_cycles(world: World) -> None:
    world.sync()
    first = mutate.add_order(world.shop, email="repeat@example.org", lines=[(1, 1)])
    world.sync()
    created = world.held("customers", "repeat@example.org")["createdAt"]
    mutate.add_order(world.shop, email="repeat@example.org", lines=[(2, 1)],
                     created_at=datetime.now().replace(microsecond=0) + timedelta(minutes=1))
    again = world.sync()
    assert again.resources[Resource.GUEST_CUSTOMERS].mode == "incremental"
    assert again.resources[Resource.GUEST_CUSTOMERS].counts.sent == 0
    assert world.held("customers", "repeat@example.org")["createdAt"] == created
    assert world.sandbox.store.why_dropped(str(first)) is None


def test_reads_are_planned_to_fetch_every_row_on_postgresql(pg_url: str) -> None:
    # PostgreSQL plans a cursor for its first 10% of rows unless told otherwise; a read of the
    # changed rows told so walks the key's index instead of the cursor column's (bench: 0.5 s
    # a statement at 1M orders). The mapping's expression shows the setting each read ran with.
    writer = sa.create_engine(pg_url)
    with writer.begin() as conn:
        conn.execute(sa.text("CREATE TABLE orders (id integer PRIMARY KEY, email text, "
                             "created timestamp, changed timestamp)"))
        conn.execute(sa.text("INSERT INTO orders VALUES (1, 'a@x.com', '2024-01-01', "
                             "'2024-01-01')"))
    writer.dispose()
    mapping = parse_mapping(textwrap.dedent("""
        source_timezone: UTC
        orders:
          table: orders
          cursor: changed
          fields:
            id: id
            email: email
            createdAt: created
            amount: {const: 1}
            status: {expression: "current_setting('cursor_tuple_fraction')"}
    """), Path("mappings.yaml"))
    engine = connect_shop(pg_url)
    source = ShopSource(engine, mapping)

    def fractions(**options: Any) -> set[str]:
        return {r.payload["status"] for r in source.records(Resource.ORDERS, **options)}

    try:
        assert fractions(since=datetime(2023, 1, 1)) == {"1"}
        assert fractions(keys=["1"]) == {"1"}
        assert fractions() == {"1"}  # full reads fetch every row too
    finally:
        engine.dispose()


def _add_gone_line(world: World, order_id: int, product_id: int) -> None:
    """A line naming a product the shop no longer has (never synced either), appended to an
    order whose own row is untouched: the order lines' append key re-reads the order."""
    with world.shop.begin() as conn:
        line_id = conn.execute(sa.select(sa.func.max(schema.order_lines.c.id))).scalar_one() + 1
        conn.execute(schema.order_lines.insert(), [{
            "id": line_id, "order_id": order_id, "product_id": product_id,
            "product_name": "Discontinued lamp", "unit_price": 4.5, "quantity": 1}])


def _sent_with_its_product(world: World, order_id: int, product_id: int) -> None:
    order, product = str(order_id), str(product_id)
    assert world.held("products", product) == {
        "id": product, "name": "Discontinued lamp", "price": 4.5}
    assert product in {p["productId"] for p in world.held("orders", order)["products"]}
    assert world.rows(Resource.ORDERS, [order])[order].status is Status.SYNCED
    assert world.rows(Resource.DELETED_PRODUCTS, [product])[product].status is Status.SYNCED


def test_a_line_for_a_gone_product_added_to_an_unchanged_order_goes_out_in_one_cycle(
    any_world: World,
) -> None:
    world = any_world
    world.sync()
    # Beyond the window's first slice, which this cycle reads: only the lines' append key
    # re-reads the order (the slice would send it without its follower).
    _add_gone_line(world, LATE_ORDER, 9_999)
    report = world.sync()
    deleted = report.resources[Resource.DELETED_PRODUCTS]
    orders = report.resources[Resource.ORDERS]
    assert (deleted.mode, orders.mode) == ("incremental", "incremental")
    assert (deleted.counts.sent, orders.counts.sent, orders.counts.waiting) == (1, 1, 0)
    _sent_with_its_product(world, LATE_ORDER, 9_999)


def test_an_order_waiting_for_a_gone_product_goes_out_the_next_cycle(any_world: World) -> None:
    world = any_world
    world.sync()
    _add_gone_line(world, 4, 9_998)
    # Orders alone: the line is followed (its mark moves on), the order waits for the product.
    # No reconciliation slice in either cycle: on the demo shop the window's first covers
    # order 4 and would find the line in the follower's place.
    waited = world.sync(CycleOptions(resources=(Resource.ORDERS,), reconcile=False)
                        ).resources[Resource.ORDERS]
    assert waited.counts.sent == 0
    assert world.rows(Resource.ORDERS, ["4"])["4"].status is Status.PENDING
    # The next cycle derives deleted products from the pending order too.
    report = world.sync(CycleOptions(reconcile=False))
    assert report.resources[Resource.DELETED_PRODUCTS].counts.sent == 1
    assert report.resources[Resource.ORDERS].counts.sent == 1
    _sent_with_its_product(world, 4, 9_998)


def test_the_orders_cursor_is_read_once_a_cycle(world: World) -> None:
    """Guests and deleted products follow the orders' cursor: its high-water mark is read
    once a cycle (before the first of them), not once per resource that follows it."""
    world.sync()
    mutate.set_order_status(world.shop, 1, 5)
    # No slice: the window's first covers order 1 and would count it changed without the cursor.
    report, statements = _run_seen(world, CycleOptions(reconcile=False))
    following = (Resource.GUEST_CUSTOMERS, Resource.DELETED_PRODUCTS, Resource.ORDERS)
    assert {report.resources[r].mode for r in following} == {"incremental"}
    assert report.resources[Resource.ORDERS].counts.changed == 1
    cursor_reads = [s for s in statements if "ORDER BY orders.updated_at DESC" in s]
    assert len(cursor_reads) == 1


def test_the_incremental_delete_guard_asks_nothing_when_the_cursors_found_rows(
    world: World,
) -> None:
    """Guests and deleted products stop if the table they are derived against (customers,
    products) is emptied; on an incremental cycle the cursor's high-water mark of that table,
    read once a cycle anyway, already says it has rows: no first-row lookup of its keys."""
    world.sync()
    mutate.set_order_status(world.shop, 1, 5)
    report, statements = _run_seen(world, CycleOptions(reconcile=False))
    derived = (Resource.GUEST_CUSTOMERS, Resource.DELETED_PRODUCTS)
    assert {report.resources[r].mode for r in derived} == {"incremental"}
    assert report.ok
    for table in ("customers", "products"):
        any_key = f"SELECT {table}.id FROM {table} WHERE {table}.id IS NOT NULL LIMIT"
        assert not [s for s in statements if s.startswith(any_key)], table
        assert len([s for s in statements if f"ORDER BY {table}.updated_at DESC" in s]) == 1


def test_records_read_by_key_bind_their_keys_as_one_array_on_postgresql(
    tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    """Pending and followed orders, the deleted products of their lines and the guests state
    cannot decide are read by key, up to 1,000 a query: on PostgreSQL each key list is one
    array parameter (SQLAlchemy and psycopg spent ~8 ms per 1,000 placeholders), the orders'
    child collections included, and each statement is fetched at once."""
    with world_on(request, tmp_path, "postgresql", "sqlite") as world:
        engine = connect_shop(world.shop_url)
        source = ShopSource(engine, world.mapping)
        keys = [str(order) for order in range(1, 201)]
        try:
            with Statements(engine) as seen:
                orders = source.readings(Resource.ORDERS, keys=keys)
                assert [row.key for row in orders.rows] == sorted(keys, key=int)
                list(source.deleted_products_of(keys).rows)
                emails = ["nobody@example.org", "someone@example.org"]
                list(source.readings(Resource.GUEST_CUSTOMERS, keys=emails).rows)
        finally:
            engine.dispose()
    reads = [sent for sent in seen.statements
             if "pg_catalog" not in sent.statement]  # not the mapping's reflection
    bound = [len(sent.parameters) for sent in reads]
    server_side = [sent.statement for sent in reads
                   if issubclass(sent.cursor, psycopg.ServerCursor)]
    assert len(bound) >= 3
    assert max(bound) <= 4
    # A chunk of keys is fetched in one round trip, not through a server-side cursor
    # (DECLARE, FETCH 1, FETCH 999, FETCH 1000, CLOSE).
    assert server_side == []


def test_the_orders_followed_rows_are_queried_once_a_cycle(world: World) -> None:
    """Deleted products are derived from the orders whose lines were appended, before the
    orders' pass re-reads those orders: both go over one query of the appended lines."""
    world.sync()
    _add_gone_line(world, LATE_ORDER, 9_997)  # beyond the window's first slice, as above
    report, statements = _run_seen(world, CycleOptions())
    assert report.resources[Resource.DELETED_PRODUCTS].counts.sent == 1
    assert report.resources[Resource.ORDERS].counts.sent == 1
    _sent_with_its_product(world, LATE_ORDER, 9_997)
    appended = [s for s in statements
                if s.startswith("SELECT order_lines.order_id, order_lines.id FROM order_lines")]
    assert len(appended) == 1


def test_the_orders_do_not_ask_again_for_customers_the_guests_pass_found_synced(
    world: World,
) -> None:
    """The guests' pass asks state which changed orders' emails are synced customers'; the
    orders' dependency check takes those as synced instead of asking state again (customers
    are not written after their own pass in a cycle)."""
    world.sync()
    with world.shop.connect() as conn:
        order_id, email = conn.execute(
            sa.select(schema.orders.c.id, schema.orders.c.email)
            .where(schema.orders.c.customer_id.is_not(None))
            .order_by(schema.orders.c.id).limit(1)).one()
    mutate.set_order_status(world.shop, order_id, 5)
    engine = create_state_engine(world.state_url)
    try:
        with Statements(engine) as seen, world.engine(state=StateStore(engine)) as sync:
            report = sync.run(CycleOptions(reconcile=False))
    finally:
        engine.dispose()
    asked = [key for sql, params, *_ in seen.statements
             if "json_each" in sql and "metrilo_id = j.value" in sql
             and "guest_customers" in params[1]
             for key in json.loads(params[0])]
    assert report.resources[Resource.ORDERS].counts.sent == 1
    assert world.rows(Resource.ORDERS, [str(order_id)])[str(order_id)].status is Status.SYNCED
    assert email.strip().lower() not in asked


def test_a_cycle_reads_the_resources_marks_in_one_query(world: World) -> None:
    """High-water marks, applied mappings, holds, last full reads and seeds of every resource
    come from one read of the meta table as the cycle starts, not a query per look (each
    resource's high-water mark was read three times)."""
    world.sync()
    # Beyond the window's first slice (which this cycle reads: its windows' reads are counted),
    # so that the cursor, not the slice, finds the change.
    mutate.set_order_status(world.shop, LATE_ORDER, 5)
    engine = create_state_engine(world.state_url)
    try:
        with Statements(engine) as seen, world.engine(state=StateStore(engine)) as sync:
            report = sync.run(CycleOptions())
    finally:
        engine.dispose()
    reads = seen.matching(lambda sql: sql.lstrip().startswith("SELECT") and "FROM meta" in sql)
    assert report.resources[Resource.ORDERS].mode == "incremental"
    assert report.resources[Resource.ORDERS].counts.changed == 1
    assert world.held("orders", str(LATE_ORDER))["status"] == "refunded"
    # The marks' one read, then the orders' followed lines and the reconciliation windows.
    assert len(reads) <= 6


def _run_seen(world: World, options: CycleOptions) -> tuple[CycleReport, list[str]]:
    """One cycle on a shop engine of its own, and the statements it sent the shop (each on
    one line: whitespace collapsed)."""
    shop = connect_shop(world.shop_url)
    try:
        with Statements(shop) as seen, \
                world.engine(source=ShopSource(shop, world.mapping)) as engine:
            report = engine.run(options)
    finally:
        shop.dispose()
    return report, [" ".join(sent.statement.split()) for sent in seen.statements]
