"""Records gone from the shop: detection, the delete guard, and the on_delete actions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.demo import mutate, schema
from cdc_sync.state import StateStore, Status
from cdc_sync.state.engine import create_state_engine
from helpers.statements import Statements
from helpers.world import ShopSize, World
from helpers.worlds import world_fixture, world_on

FULL = CycleOptions(full=True)


def _always_full(mapping: dict[str, Any]) -> None:
    mapping["sync"] = {"full_reconcile_minutes": 0}


world = world_fixture(edit=_always_full)


def _lonely_customers(world: World, count: int) -> list[tuple[int, str]]:
    """Customers with no orders (deleting them makes no guest customer)."""
    customers, orders = schema.customers, schema.orders
    with world.shop.connect() as conn:
        rows = conn.execute(
            sa.select(customers.c.id, customers.c.email)
            .where(~sa.exists().where(orders.c.customer_id == customers.c.id))
            .order_by(customers.c.id).limit(count)
        ).all()
    return [(int(r[0]), str(r[1]).lower()) for r in rows]


def _items_sent(world: World, resource: str) -> int:
    return int(world.sandbox.store.stats()["items_accepted"].get(resource, 0))


# -- gone, and back ---------------------------------------------------------------------------

def test_a_deleted_customer_is_recorded_gone_and_sent_again_when_it_returns(world: World) -> None:
    world.sync()
    (customer_id, _), = _lonely_customers(world, 1)
    with world.shop.connect() as conn:
        row = conn.execute(sa.select(schema.customers)
                           .where(schema.customers.c.id == customer_id)).one()
    mutate.delete_customer(world.shop, customer_id)
    report = world.sync()
    assert report.resources[Resource.CUSTOMERS].counts.gone == 1
    assert world.rows(Resource.CUSTOMERS, [str(customer_id)])[str(customer_id)].status is (
        Status.GONE)

    with world.shop.begin() as conn:
        conn.execute(schema.customers.insert(), [row._asdict()])
    back = world.sync()
    assert back.resources[Resource.CUSTOMERS].counts.new == 1
    assert back.resources[Resource.CUSTOMERS].counts.sent == 1
    assert world.rows(Resource.CUSTOMERS, [str(customer_id)])[str(customer_id)].status is (
        Status.SYNCED)
    assert world.differences() == []


# -- the guard --------------------------------------------------------------------------------

def test_an_emptied_table_trips_the_guard_before_anything_is_sent_or_marked_gone(
    world: World,
) -> None:
    world.sync()
    sent_before = _items_sent(world, "products")
    with world.shop.begin() as conn:
        conn.execute(schema.products.delete())
    report = world.sync()
    assert not report.ok
    for resource in (Resource.PRODUCTS, Resource.DELETED_PRODUCTS):
        error = report.resources[resource].error or ""
        assert error.startswith("products: 30 of 30 keys sampled from state are gone")
        assert f"so none of {resource} is marked gone" in error
    # every ordered product would have become a "deleted product": none was sent
    assert _items_sent(world, "products") == sent_before
    assert world.state().count_by_status("products")[Status.GONE] == 0
    assert report.resources[Resource.ORDERS].error is None


def test_an_emptied_table_stops_its_derived_resource_in_incremental_cycles_too(
    tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    with world_on(request, tmp_path) as world:  # cursor mode, no full reads
        world.sync()
        sent_before = _items_sent(world, "products")
        with world.shop.begin() as conn:
            conn.execute(schema.products.delete())
        mutate.set_order_status(world.shop, 3, 4)  # its lines now name "deleted" products
        report = world.sync()
        deleted = report.resources[Resource.DELETED_PRODUCTS]
        assert deleted.mode == "incremental"
        assert (deleted.error or "").startswith("products: the shop has none")
        assert _items_sent(world, "products") == sent_before
        assert report.resources[Resource.ORDERS].error is None


def test_an_emptied_customer_table_sends_no_guest_customers(world: World) -> None:
    world.sync()
    sent_before = _items_sent(world, "customers")
    with world.shop.begin() as conn:
        conn.execute(schema.customer_tags.delete())
        conn.execute(schema.customers.delete())
    report = world.sync()
    assert report.resources[Resource.CUSTOMERS].error is not None
    assert "(guest_customers are derived from them)" in (
        report.resources[Resource.GUEST_CUSTOMERS].error or "")
    assert _items_sent(world, "customers") == sent_before
    assert world.state().count_by_status("customers")[Status.GONE] == 0


def test_a_where_that_hides_half_the_rows_trips_the_sampled_guard(
    tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    size = ShopSize(customers=900, categories=5, products=20, orders=100)
    with world_on(request, tmp_path, size=size, edit=_always_full) as world:
        world.sync()
        sent_before = _items_sent(world, "customers")

        def hide_half(mapping: dict[str, Any]) -> None:
            mapping["customers"]["where"] = "id <= 450"
            mapping["sync"]["hold_changes_over"] = 100_000

        world.edit_mapping(hide_half)
        report = world.sync()
        error = report.resources[Resource.CUSTOMERS].error or ""
        assert "keys sampled from state are gone from the shop" in error
        assert "of the 900 records Metrilo holds" in error
        assert report.resources[Resource.CUSTOMERS].counts.scanned == 0
        assert _items_sent(world, "customers") == sent_before
        assert world.state().count_by_status("customers")[Status.GONE] == 0


def test_deletions_under_the_guard_share_pass_it(world: World) -> None:
    world.sync()
    lonely = _lonely_customers(world, 3)
    for customer_id, _ in lonely:
        mutate.delete_customer(world.shop, customer_id)
    report = world.sync()
    assert report.ok, report.errors()
    assert report.resources[Resource.CUSTOMERS].counts.gone == 3


# -- on_delete actions --------------------------------------------------------------------------

def test_on_delete_tag_tags_the_customer_and_untags_it_when_it_returns(world: World) -> None:
    world.edit_mapping(lambda m: m["customers"].update(
        on_delete={"action": "tag", "tag": "deleted"}))
    world.sync()
    (customer_id, email), = _lonely_customers(world, 1)
    with world.shop.connect() as conn:
        row = conn.execute(sa.select(schema.customers)
                           .where(schema.customers.c.id == customer_id)).one()
    mutate.delete_customer(world.shop, customer_id)
    world.sync()
    assert "deleted" in world.held("customers", email)["tags"]
    state_row = world.rows(Resource.CUSTOMERS, [str(customer_id)])[str(customer_id)]
    assert state_row.status is Status.GONE
    assert "deleted" in state_row.tags

    with world.shop.begin() as conn:
        conn.execute(schema.customers.insert(), [row._asdict()])
    world.sync()
    assert "deleted" not in world.held("customers", email).get("tags", [])
    assert world.differences() == []


def test_on_delete_status_sends_the_whole_order_again_with_the_status(world: World) -> None:
    world.edit_mapping(lambda m: m["orders"].update(
        on_delete={"action": "status", "status": "deleted"}))
    world.sync()
    before = world.held("orders", "5")
    mutate.delete_order(world.shop, 5)
    report = world.sync()
    assert report.ok, report.errors()
    assert report.resources[Resource.ORDERS].counts.gone == 1
    assert world.held("orders", "5") == {**before, "status": "deleted"}
    assert world.rows(Resource.ORDERS, ["5"])["5"].status is Status.GONE
    assert world.differences(extra_ok={"orders": {"5"}}) == []


def test_on_delete_status_keeps_payloads_of_orders_synced_before_it_was_set(
    world: World,
) -> None:
    world.sync()  # on_delete: gone, so no payload is kept
    assert not world.rows(Resource.ORDERS, ["6"])["6"].has_payload
    world.edit_mapping(lambda m: m["orders"].update(
        on_delete={"action": "status", "status": "deleted"}))
    sent_before = _items_sent(world, "orders")
    world.sync()
    assert _items_sent(world, "orders") == sent_before, "keeping payloads must not resend"
    assert world.rows(Resource.ORDERS, ["6"])["6"].has_payload
    before = world.held("orders", "6")
    mutate.delete_order(world.shop, 6)
    world.sync()
    assert world.held("orders", "6") == {**before, "status": "deleted"}


def test_many_gone_orders_are_looked_up_in_chunks_of_at_most_1000(
    tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    size = ShopSize(customers=50, categories=5, products=20, orders=1300)

    def status_and_no_guard(mapping: dict[str, Any]) -> None:
        mapping["sync"] = {"full_reconcile_minutes": 0, "delete_guard": 1.0}
        mapping["orders"]["on_delete"] = {"action": "status", "status": "deleted"}

    with world_on(request, tmp_path, size=size, edit=status_and_no_guard) as world:
        world.sync()
        with world.shop.begin() as conn:
            for table in (schema.order_lines, schema.order_coupons):
                conn.execute(table.delete().where(table.c.order_id <= 1200))
            conn.execute(schema.orders.delete().where(schema.orders.c.id <= 1200))
        engine = create_state_engine(world.state_url)
        try:
            with Statements(engine) as seen, StateStore(engine) as state:
                report = world.sync(state=state)
        finally:
            engine.dispose()
        largest = [len(sent.parameters[0] if sent.executemany else sent.parameters)
                   for sent in seen.statements]
        assert report.ok, report.errors()
        assert report.resources[Resource.ORDERS].counts.gone == 1200
        assert max(largest) <= 1000 + 2
        held = world.sandbox.store.records("orders")
        assert sum(1 for o in held.values() if o["status"] == "deleted") == 1200
