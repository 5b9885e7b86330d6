"""One cycle against the real sandbox: what is sent, in which order, and what state says after.

The sandbox stands in for Metrilo (it checks, stores with Metrilo's merge semantics, and marks
orders Metrilo would silently drop); every test ends by comparing it with the shop.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_sync.core.report import CycleKind
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.demo import mutate, schema
from cdc_sync.errors import MetriloFatalError
from cdc_sync.state import Status
from helpers.backends import COMBINATIONS
from helpers.transports import Gatekeeper
from helpers.world import World
from helpers.worlds import world_fixture

world = world_fixture()


any_world = world_fixture(COMBINATIONS)


def _scalar(world: World, stmt: sa.Select[Any]) -> int:
    with world.shop.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def _tagged_customer(world: World) -> tuple[int, str, str]:
    """(customer id, email, one of its tags)."""
    ct, tags, customers = schema.customer_tags, schema.tags, schema.customers
    with world.shop.connect() as conn:
        row = conn.execute(
            sa.select(ct.c.customer_id, customers.c.email, tags.c.name)
            .join(tags, tags.c.id == ct.c.tag_id)
            .join(customers, customers.c.id == ct.c.customer_id)
            .order_by(ct.c.customer_id).limit(1)
        ).one()
    return int(row[0]), str(row[1]).lower(), str(row[2])


def _stamp_another_customer_an_hour_later(world: World, customer_id: int) -> None:
    """Set another customer's cursor (only: its record does not change) an hour after this
    one's."""
    customers = schema.customers
    with world.shop.connect() as conn:
        stamp = conn.execute(sa.select(customers.c.updated_at)
                             .where(customers.c.id == customer_id)).scalar_one()
        other = conn.execute(sa.select(sa.func.max(customers.c.id))
                             .where(customers.c.id != customer_id)).scalar_one()
    world.write(customers, int(other), updated_at=stamp + timedelta(hours=1))


def _customer_with_orders(world: World) -> tuple[int, str]:
    customers, orders = schema.customers, schema.orders
    with world.shop.connect() as conn:
        row = conn.execute(
            sa.select(customers.c.id, customers.c.email)
            .where(customers.c.id == sa.select(sa.func.min(orders.c.customer_id))
                   .scalar_subquery())
        ).one()
    return int(row[0]), str(row[1]).lower()


def _customer_without_orders(world: World) -> tuple[int, str]:
    customers, orders = schema.customers, schema.orders
    with world.shop.connect() as conn:
        row = conn.execute(
            sa.select(customers.c.id, customers.c.email)
            .where(~sa.exists().where(orders.c.customer_id == customers.c.id))
            .order_by(customers.c.id).limit(1)
        ).one()
    return int(row[0]), str(row[1]).lower()


def _orders_of(world: World, customer_id: int) -> list[str]:
    with world.shop.connect() as conn:
        ids = conn.execute(sa.select(schema.orders.c.id)
                           .where(schema.orders.c.customer_id == customer_id)).scalars()
        return [str(i) for i in ids]


def _sent_items(world: World) -> int:
    return sum(world.sandbox.store.stats()["items_accepted"].values())


# -- the sandbox equals the source ------------------------------------------------------------

def test_sync_makes_the_sandbox_equal_the_source_and_follows_changes(any_world: World) -> None:
    world = any_world
    report = world.sync()
    assert report.ok, report.errors()
    assert world.differences() == []
    assert world.sandbox.store.dropped_count() == 0

    before = _sent_items(world)
    again = world.sync()
    assert again.ok
    assert _sent_items(world) == before, "unchanged records were sent again"

    order_id = _scalar(world, sa.select(sa.func.min(schema.orders.c.id))
                       .where(schema.orders.c.status == 1))
    mutate.set_order_status(world.shop, order_id, 3)
    customer_id, email, tag = _tagged_customer(world)
    mutate.remove_tag(world.shop, customer_id, tag)
    mutate.add_order(world.shop, email="newcomer@example.org", lines=[(1, 2)])
    changed = world.sync()
    assert changed.ok, changed.errors()
    assert world.differences() == []
    assert world.held("orders", str(order_id))["status"] == "completed"
    assert tag not in world.held("customers", email).get("tags", [])
    assert world.sandbox.store.dropped_count() == 0
    # the order, the customer and its untag, the new order and its guest customer
    assert _sent_items(world) - before == 5, "more than the changed records were sent"


# -- import order and dependencies ------------------------------------------------------------

def test_a_deleted_product_that_orders_reference_arrives_before_those_orders(world: World) -> None:
    world.sync()
    order_id = mutate.add_order(world.shop, email="buyer@example.org", lines=[(2, 1)])
    mutate.delete_product(world.shop, 2)
    report = world.sync()
    assert report.ok, report.errors()
    assert report.resources[Resource.DELETED_PRODUCTS].counts.sent == 1
    assert world.sandbox.store.why_dropped(str(order_id)) is None
    assert world.sandbox.store.dropped_count() == 0
    assert world.differences(extra_ok={}) == []


def test_a_guest_order_arrives_after_its_synthesized_customer(world: World) -> None:
    world.sync()
    order_id = mutate.add_order(world.shop, email=" First.Buyer@Example.ORG ", lines=[(3, 1)])
    report = world.sync()
    assert report.ok, report.errors()
    guest = world.sandbox.store.get("customers", "first.buyer@example.org")
    assert guest is not None
    assert world.sandbox.store.why_dropped(str(order_id)) is None
    assert world.differences() == []


def test_an_order_waits_for_its_rejected_customer_and_goes_once_it_is_fixed(
    world: World,
) -> None:
    customer_id, email = _customer_with_orders(world)
    mutate.rename_customer(world.shop, customer_id, "Bad\x01Name")
    first = world.sync()
    orders = _orders_of(world, customer_id)
    rows = world.rows(Resource.ORDERS, orders)
    assert {row.status for row in rows.values()} == {Status.PENDING}
    assert all(f"waiting for customer {email!r}, which is rejected" in (row.last_error or "")
               for row in rows.values())
    assert first.resources[Resource.ORDERS].counts.waiting == len(orders)
    assert all(world.sandbox.store.get("orders", o) is None for o in orders)

    mutate.rename_customer(world.shop, customer_id, "Fixed")
    fixed = world.sync(CycleOptions(reconcile=False))  # the pending walk, not a slice
    assert fixed.resources[Resource.ORDERS].mode == "incremental"
    assert fixed.resources[Resource.ORDERS].counts.sent >= len(orders)
    assert {r.status for r in world.rows(Resource.ORDERS, orders).values()} == {Status.SYNCED}
    assert world.sandbox.store.dropped_count() == 0
    assert world.differences() == []


# -- failures ------------------------------------------------------------------------------

def test_failed_sends_stay_pending_and_are_retried_next_cycle_even_if_unchanged(
    world: World,
) -> None:
    world.sandbox.faults.update({"error_rate": 1.0, "paths": ["order/batch"]})
    failed = world.sync()
    assert not failed.ok
    assert "the cycle stopped, unsent records stay pending" in (failed.error or "")
    counts = world.state().count_by_status("orders")
    assert counts[Status.SYNCED] == 0
    assert counts[Status.PENDING] > 0
    assert world.sandbox.store.counts()["orders"] == 0

    world.sandbox.faults.clear()
    retried = world.sync()
    assert retried.ok, retried.errors()
    assert retried.resources[Resource.ORDERS].counts.retried == counts[Status.PENDING]
    assert world.differences() == []


def test_a_401_stops_the_cycle_and_leaves_state_untouched(world: World) -> None:
    with world.client(token="revoked") as client, pytest.raises(MetriloFatalError) as raised:
        world.sync(client=client)
    assert raised.value.status_code == 401
    state = world.state()
    for resource in Resource:
        assert set(state.count_by_status(resource.value).values()) == {0}
    last = state.last_runs(1)[0]
    assert last.status == "failed"
    assert "401" in (last.error or "")


def test_a_401_mid_cycle_marks_synced_only_what_metrilo_accepted(world: World) -> None:
    gate = Gatekeeper()
    gate.unauthorized_after = 2
    with world.client(transport=gate, max_items=20, concurrency=2) as client, \
            pytest.raises(MetriloFatalError):
        world.sync(client=client)
    state = world.state()
    synced = 0
    for resource in Resource:
        counts = state.count_by_status(resource.value)
        synced += counts[Status.SYNCED]
        assert counts[Status.PENDING] == counts[Status.REJECTED] == 0
    held = sum(world.sandbox.store.counts().values())
    assert synced == held, "state must say synced for exactly what Metrilo took"
    assert 0 < held < 60


def test_one_locally_invalid_record_is_rejected_and_the_rest_of_its_batch_delivered(
    world: World,
) -> None:
    customer_id, email = _customer_without_orders(world)
    mutate.rename_customer(world.shop, customer_id, "Bad\x01Name")
    report = world.sync()
    row = world.rows(Resource.CUSTOMERS, [str(customer_id)])[str(customer_id)]
    assert row.status is Status.REJECTED
    assert "firstName: contains the control character U+0001" in (row.last_error or "")
    assert report.resources[Resource.CUSTOMERS].counts.rejected == 1
    assert world.sandbox.store.get("customers", email) is None
    assert world.differences() == []  # expected() leaves out the invalid record


def test_a_record_metrilo_refuses_is_isolated_and_the_rest_of_its_batch_delivered(
    world: World,
) -> None:
    gate = Gatekeeper()
    gate.refused = {"order/batch": {"17"}}
    with world.client(transport=gate) as client:
        report = world.sync(client=client)
    assert report.ok, report.errors()
    row = world.rows(Resource.ORDERS, ["17"])["17"]
    assert row.status is Status.REJECTED
    assert "Metrilo answered 400" in (row.last_error or "")
    assert world.differences() == [
        "orders: 1 missing, e.g. ['17']"
    ]


def test_rejected_records_wait_until_they_change_or_a_retry(world: World) -> None:
    gate = Gatekeeper()
    gate.refused = {"order/batch": {"17", "18"}}
    with world.client(transport=gate) as client:
        world.sync(client=client)
        unchanged = world.sync(client=client)
    refusals = gate.refusals
    assert unchanged.resources[Resource.ORDERS].counts.sent == 0
    assert world.rows(Resource.ORDERS, ["17"])["17"].status is Status.REJECTED

    gate.refused = {}  # Metrilo would take them now; the shop did not change
    with world.client(transport=gate) as client:
        quiet = world.sync(client=client)
        assert quiet.resources[Resource.ORDERS].counts.sent == 0
        mutate.set_order_status(world.shop, 17, 5)  # a change: sent again
        changed = world.sync(client=client)
        assert changed.resources[Resource.ORDERS].counts.sent == 1
        assert world.rows(Resource.ORDERS, ["18"])["18"].status is Status.REJECTED

        world.state().retry_rejected("orders")  # what `cdc-sync retry orders` does first
        retried = world.sync(CycleOptions(kind=CycleKind.RETRY), client=client)
    assert retried.resources[Resource.ORDERS].counts.sent == 1
    assert gate.refusals == refusals
    assert world.differences() == []


def test_faults_that_stop_a_batch_leave_no_record_marked_synced_that_was_not_sent(
    world: World,
) -> None:
    chunks = []

    def break_after_three_chunks(resource: Resource, _counts: object) -> None:
        chunks.append(resource)
        if len(chunks) == 3:  # Metrilo goes down for good in the middle of the customers
            world.sandbox.faults.update({"error_rate": 1.0})

    with world.client(max_items=10, concurrency=1) as client:
        report = world.sync(client=client, chunk_size=10, on_progress=break_after_three_chunks)
    assert not report.ok
    state = world.state()
    held = world.sandbox.store.records("customers")
    rows = [row for keys in state.iter_live_keys("customers")
            for row in state.lookup("customers", keys).values()]
    synced = [row.metrilo_id for row in rows if row.status is Status.SYNCED]
    assert 0 < len(synced) < len(rows)
    assert set(synced) == set(held)


def test_customer_tags_removed_in_the_shop_are_untagged_at_metrilo(world: World) -> None:
    world.sync()
    customer_id, email, tag = _tagged_customer(world)
    assert tag in world.held("customers", email)["tags"]
    mutate.remove_tag(world.shop, customer_id, tag)
    # No reconciliation slice: the window's first covers this customer and would untag it
    # without the customers' cursor.
    report = world.sync(CycleOptions(reconcile=False))
    assert report.resources[Resource.CUSTOMERS].counts.untagged == 1
    assert tag not in world.held("customers", email).get("tags", [])
    assert world.rows(Resource.CUSTOMERS, [str(customer_id)])[str(customer_id)].tags == tuple(
        sorted(set(world.held("customers", email).get("tags", [])))
    )
    assert world.differences() == []


def test_a_failed_untag_keeps_the_customer_pending_and_untags_next_cycle(world: World) -> None:
    world.sync()
    customer_id, email, tag = _tagged_customer(world)
    mutate.remove_tag(world.shop, customer_id, tag)
    # Another customer stamped an hour later moves the customers' mark past this one's bump by
    # more than the cursor's overlap (5 minutes): the retry below cannot re-read it by its cursor.
    _stamp_another_customer_an_hour_later(world, customer_id)
    world.sandbox.faults.update({"error_rate": 1.0, "paths": ["customer/untag"]})
    world.sync(CycleOptions(reconcile=False))  # the cursor, not a slice, finds the change
    row = world.rows(Resource.CUSTOMERS, [str(customer_id)])[str(customer_id)]
    assert row.status is Status.PENDING
    assert "untag failed" in (row.last_error or "")
    world.sandbox.faults.clear()
    # No slice either, and the mark is past the overlap: only the pending walk retries it.
    world.sync(CycleOptions(reconcile=False))
    assert tag not in world.held("customers", email).get("tags", [])
    assert world.differences() == []
