"""A full cycle on a shop that computes digests (PostgreSQL, MariaDB) reads keys and digests
only: unchanged, it reads no value again, composes and sends nothing; changed rows (a status,
a child row edited, added or removed) are read again by key and sent, and only those.
Reconciliation slices read digests the same way (tests/test_reconcile.py runs them on both).
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.cycle.engine import SyncEngine
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.demo import mutate, schema
from cdc_sync.source import ShopSource, connect_shop
from cdc_sync.source.digests import COUNT_LABEL, DIGEST_LABEL
from cdc_sync.state import StateStore
from helpers.cli import run_cli
from helpers.statements import Statements
from helpers.world import World
from helpers.worlds import world_fixture

FULL = CycleOptions(full=True)
DIGESTING = [
    pytest.param(("postgresql", "sqlite"), id="shop=postgresql,state=sqlite"),
    pytest.param(("mariadb", "postgresql"), id="shop=mariadb,state=postgresql"),
]


world = world_fixture(DIGESTING)


def _values_read(sql: str) -> bool:
    """A statement that reads rows' values with digests by key (what a digest-only cycle
    reads again for the rows whose marks differ): IN (...), or = ANY(array) on PostgreSQL
    (query.key_in)."""
    return DIGEST_LABEL in sql and (" IN " in sql.upper() or "ANY (" in sql.upper())


def _digest_only(sql: str) -> bool:
    """A child read of a digest-only read (counts and sums per parent)."""
    return COUNT_LABEL in sql


def _requests(world: World) -> int:
    stats = world.sandbox.store.stats()["requests"]
    return sum(sum(by_status.values()) for by_status in stats.values())


def test_a_no_change_full_cycle_reads_digests_only_and_sends_nothing(world: World) -> None:
    assert world.sync().ok
    before = _requests(world)
    with Statements(sa.Engine) as seen:  # every engine: the cycle makes its own
        again = world.sync(FULL)
    orders = again.resources[Resource.ORDERS].counts
    assert orders.scanned == orders.unchanged == 200
    assert all(r.counts.sent == 0 for r in again.resources.values())
    assert seen.matching(_values_read) == []  # nothing read again with values: nothing composed
    assert _requests(world) == before


def test_a_full_cycle_sends_exactly_the_orders_whose_rows_or_children_changed(
    world: World,
) -> None:
    assert world.sync().ok
    lines = schema.order_lines

    def first_line(conn: sa.Connection, order_id: int) -> int:
        return int(conn.execute(sa.select(sa.func.min(lines.c.id))
                                .where(lines.c.order_id == order_id)).scalar_one())

    with world.shop.begin() as conn:  # children alone: the orders' cursor does not move
        conn.execute(lines.update().where(lines.c.id == first_line(conn, 20))
                     .values(quantity=77))
        conn.execute(lines.delete().where(lines.c.id == first_line(conn, 30)))
        conn.execute(schema.order_coupons.insert().values(order_id=40, code="DIGEST-1"))
    mutate.set_order_status(world.shop, 10, 5)
    before = _requests(world)

    with Statements(sa.Engine) as seen:
        report = world.sync(FULL)
    orders = report.resources[Resource.ORDERS].counts
    assert (orders.sent, orders.changed, orders.unchanged) == (4, 4, 196)
    # The changed rows (and their children) read again by key.
    assert len(seen.matching(_values_read)) >= 1
    assert _requests(world) > before
    assert world.held("orders", "10")["status"] == "refunded"
    assert 77 in [p["quantity"] for p in world.held("orders", "20")["products"]]
    assert "DIGEST-1" in world.held("orders", "40")["coupons"]
    assert world.differences() == []

    again = world.sync(FULL)
    assert again.resources[Resource.ORDERS].counts.sent == 0


def test_digests_off_marks_rows_in_python_and_a_switch_sends_nothing(world: World) -> None:
    synced = run_cli(world, "sync", CDC_SYNC_SOURCE_DIGESTS="off")
    assert synced.returncode == 0, synced.stderr
    before = _requests(world)
    assert run_cli(world, "sync", "--full", CDC_SYNC_SOURCE_DIGESTS="off").returncode == 0
    assert run_cli(world, "sync", "--full").returncode == 0  # auto: marks switch kind
    assert run_cli(world, "sync", "--full").returncode == 0
    assert _requests(world) == before  # recomposed once on the switch, sent nothing
    assert world.differences() == []

    status = run_cli(world, "status", CDC_SYNC_SOURCE_DIGESTS="off").stdout
    assert "source marks: from each row's values, in Python" in status
    assert "CDC_SYNC_SOURCE_DIGESTS=auto" in run_cli(world, "status").stdout
    refused = run_cli(world, "status", CDC_SYNC_SOURCE_DIGESTS="sometimes")
    assert refused.returncode == 2
    assert "CDC_SYNC_SOURCE_DIGESTS" in refused.stderr + refused.stdout


def _full_cycle(world: World, *, digests: bool) -> Any:
    """A full cycle whose source computes digests or not (CDC_SYNC_SOURCE_DIGESTS)."""
    shop = connect_shop(world.shop_url)
    try:
        with StateStore.open(world.state_url) as state, world.client() as client:
            engine = SyncEngine(mapping=world.mapping, client=client, state=state,
                                source=ShopSource(shop, world.mapping, digests=digests))
            return engine.run(FULL)
    finally:
        shop.dispose()


def test_after_marks_of_another_kind_a_full_cycle_reads_values_once_then_digests(
    world: World,
) -> None:
    """Marks made under another seed (Python marks here; a mapping change or an upgrade does
    the same) all differ: a digest-only read would read every row again by key, so the first
    full cycle reads values, and the next one digests only."""
    assert _full_cycle(world, digests=False).ok
    before = _requests(world)
    with Statements(sa.Engine) as seen:
        switched = _full_cycle(world, digests=True)
    orders = switched.resources[Resource.ORDERS].counts
    assert orders.scanned == orders.unchanged == 200
    # One values read, nothing read twice.
    assert (seen.matching(_values_read), seen.matching(_digest_only)) == ([], [])
    with Statements(sa.Engine) as seen:
        again = _full_cycle(world, digests=True)
    assert again.resources[Resource.ORDERS].counts.unchanged == 200
    assert seen.matching(_values_read) == []
    assert seen.matching(_digest_only)  # now under the same seed: keys and digests only
    assert _requests(world) == before
