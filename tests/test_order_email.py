"""An order that loses its email is held back, not sent without its customer (issue 13.8).

The orders' email comes through a join to customers (as in Chinook). When the customer row
goes (or its email is cleared), the join finds nothing: the order would be sent again without
an email, Metrilo would accept it and the order would lose its customer there. It is rejected
instead, with a reason `status` and `rejected` show, and sent again once it has an email.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.demo import schema
from cdc_sync.state import Status
from helpers.backends import COMBINATIONS
from helpers.cli import run_cli
from helpers.world import ShopSize, World
from helpers.worlds import world_fixture


def _email_through_a_join(data: dict[str, Any]) -> None:
    orders = data["orders"]
    orders["joins"] = [{"table": "customers", "alias": "c", "on": {"customer_id": "id"}}]
    orders["fields"]["email"] = "c.email"
    data["guest_customers"] = {"enabled": False}


world = world_fixture(COMBINATIONS, edit=_email_through_a_join,
                      size=ShopSize(customers=8, categories=2, products=5, orders=30))


def _an_order_of_a_customer(world: World) -> tuple[str, int]:
    with world.shop.connect() as conn:
        order_id, customer_id = conn.execute(
            sa.select(schema.orders.c.id, schema.orders.c.customer_id)
            .where(schema.orders.c.customer_id.is_not(None))
            .order_by(schema.orders.c.id).limit(1)).one()
    return str(order_id), int(customer_id)


def test_an_order_whose_email_disappears_is_held_back_with_a_reason(world: World) -> None:
    world.sync()
    order, customer = _an_order_of_a_customer(world)
    sent = world.sandbox.store.get("orders", order)
    assert sent is not None
    email = sent["email"]
    with world.shop.begin() as conn:  # the customer goes: the join finds nothing any more
        conn.execute(schema.customers.delete().where(schema.customers.c.id == customer))
    report = world.sync(CycleOptions(full=True))
    assert report.resources[Resource.ORDERS].counts.rejected >= 1
    # Metrilo still has the order with its customer: nothing was sent over it.
    assert world.sandbox.store.get("orders", order) == sent
    row = world.rows(Resource.ORDERS, [order])[order]
    assert row.status is Status.REJECTED
    assert (row.last_error or "").startswith("email: missing: Metrilo keeps an order only")
    status = run_cli(world, "status")
    assert "email: missing: Metrilo keeps an order only" in status.stdout, status.stderr
    rejected = run_cli(world, "rejected", "orders")
    assert f"{order}\t" in rejected.stdout
    # The order's email back (the order now names another customer): sent again by itself.
    with world.shop.begin() as conn:
        conn.execute(schema.orders.update().where(schema.orders.c.id == int(order))
                     .values(customer_id=sa.select(sa.func.min(schema.customers.c.id))
                             .scalar_subquery()))
    world.sync(CycleOptions(full=True))
    assert world.rows(Resource.ORDERS, [order])[order].status is Status.SYNCED
    again = world.sandbox.store.get("orders", order)
    assert again is not None
    assert again["email"] != email
