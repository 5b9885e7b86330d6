"""Source fingerprints: a full cycle skips composing rows whose raw values did not change,
and never misses a change because of it (child rows, mapping edits, values masked by a map).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.demo import mutate, schema
from helpers.backends import COMBINATIONS
from helpers.world import World
from helpers.worlds import world_fixture

FULL = CycleOptions(full=True)


world = world_fixture(COMBINATIONS)


def _order_keys(world: World) -> list[str]:
    with world.shop.connect() as conn:
        return [str(i) for i in conn.execute(sa.select(schema.orders.c.id)).scalars()]


def _marks(world: World, keys: list[str]) -> dict[str, str]:
    found = world.state().source_marks(Resource.ORDERS.value, keys)
    return {key: mark.source_fingerprint for key, mark in found.items()}


def test_a_first_push_leaves_a_source_mark_for_every_record_and_a_full_cycle_sends_nothing(
    world: World,
) -> None:
    world.sync()
    keys = _order_keys(world)
    assert set(_marks(world, keys)) == set(keys)

    again = world.sync(FULL)
    orders = again.resources[Resource.ORDERS].counts
    assert (orders.scanned, orders.unchanged, orders.sent) == (len(keys), len(keys), 0)
    assert all(r.counts.sent == 0 for r in again.resources.values())
    assert world.differences() == []


def test_a_change_to_child_rows_alone_is_found_by_a_full_cycle(world: World) -> None:
    world.sync()
    with world.shop.connect() as conn:
        line = conn.execute(sa.select(schema.order_lines.c.id, schema.order_lines.c.order_id,
                                      schema.order_lines.c.quantity)
                            .order_by(schema.order_lines.c.id).limit(1)).one()
    world.write(schema.order_lines, line.id, quantity=line.quantity + 40)

    report = world.sync(FULL)
    assert report.resources[Resource.ORDERS].counts.changed == 1
    quantities = [p["quantity"] for p in world.held("orders", str(line.order_id))["products"]]
    assert line.quantity + 40 in quantities
    assert world.differences() == []


def test_a_raw_change_that_leaves_the_record_alone_is_not_resent_but_remembered(
    world: World,
) -> None:
    # Status codes 8 and 9 both map to the mapping's default, "other".
    mutate.set_order_status(world.shop, 1, 8)
    world.sync()
    before = _marks(world, ["1"])["1"]

    world.write(schema.orders, 1, status=9)
    report = world.sync(FULL)
    orders = report.resources[Resource.ORDERS].counts
    assert (orders.changed, orders.sent) == (0, 0)
    after = _marks(world, ["1"])["1"]
    assert after != before, "the new raw values were not remembered"
    assert world.held("orders", "1")["status"] == "other"


def test_a_mapping_edit_recomposes_every_row_and_sends_only_what_changed(world: World) -> None:
    world.sync()
    keys = _order_keys(world)
    before = _marks(world, keys)

    def add_unused_status(data: dict[str, Any]) -> None:
        data["orders"]["fields"]["status"]["map"][42] = "archived"  # no order has code 42

    world.edit_mapping(add_unused_status)
    report = world.sync(FULL)
    orders = report.resources[Resource.ORDERS].counts
    assert (orders.changed, orders.sent, orders.unchanged) == (0, 0, len(keys))
    after = _marks(world, keys)
    assert set(after) == set(keys)
    assert all(after[k] != before[k] for k in keys), "rows were not recomposed after the edit"

    def rename_refunded(data: dict[str, Any]) -> None:
        data["orders"]["fields"]["status"]["map"][5] = "returned"

    mutate.set_order_status(world.shop, 2, 5)
    world.sync()
    world.edit_mapping(rename_refunded)
    world.sync(CycleOptions(full=True, accept_mapping=True))
    assert world.held("orders", "2")["status"] == "returned"
    assert world.differences() == []
