"""Full resync (resumable, restartable), dry runs, and mapping changes held for a confirm."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from cdc_sync.core.report import CycleReport, ResourceCounts
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.engine import SyncEngine
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.cycle.resync import active_resync, run_resync
from cdc_sync.demo import mutate
from cdc_sync.state import Status
from cdc_sync.state.engine import create_state_engine
from helpers.backends import BOTH_STATES
from helpers.world import World
from helpers.worlds import world_fixture

DRY = CycleOptions(dry_run=True)


world = world_fixture(BOTH_STATES)


sqlite_world = world_fixture()


def _sent(world: World) -> int:
    return sum(world.sandbox.store.stats()["items_accepted"].values())


def _total(report: CycleReport, name: str) -> int:
    return sum(getattr(rep.counts, name) for rep in report.resources.values())


def _forced(engine: SyncEngine) -> int:
    return sum(engine.state.forced_count(r.value) for r in Resource)


def _pending(engine: SyncEngine) -> int:
    return sum(engine.state.count_by_status(r.value)[Status.PENDING] for r in Resource)


def _table_rows(state_url: str) -> dict[str, int]:
    """Rows per state table (0 for a table not created yet)."""
    engine = create_state_engine(state_url)
    try:
        names = set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            return {name: int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {name}")).scalar_one())
                    if name in names else 0 for name in ("sync_state", "runs", "meta")}
    finally:
        engine.dispose()


def _fail_after_chunks(world: World, chunks: int) -> Any:
    seen: list[Resource] = []

    def progress(resource: Resource, _counts: ResourceCounts) -> None:
        seen.append(resource)
        if len(seen) == chunks:  # Metrilo goes down for good halfway through
            world.sandbox.faults.update({"error_rate": 1.0})

    return progress


# -- resync -----------------------------------------------------------------------------------

def test_resync_sends_every_record_again_and_finishes(world: World) -> None:
    first = world.sync()
    records = _total(first, "sent")
    with world.engine() as engine:
        report = run_resync(engine)
        assert active_resync(engine) is None
    assert report.ok, report.errors()
    assert _total(report, "forced") == records
    assert _sent(world) == 2 * records
    assert world.differences() == []


def test_a_resync_stopped_halfway_goes_on_where_it_stopped(world: World) -> None:
    world.sync()
    sent_once = _sent(world)
    with world.engine(chunk_size=20, on_progress=_fail_after_chunks(world, 4),
                      client=world.client(max_items=20, concurrency=1)) as engine:
        stopped = run_resync(engine)
        assert not stopped.ok
        assert active_resync(engine) is not None
        left = _forced(engine) + _pending(engine)
    first_part = _sent(world) - sent_once
    assert 0 < first_part < sent_once
    assert left > 0

    world.sandbox.faults.clear()
    with world.engine() as engine:
        resumed = run_resync(engine)
        assert resumed.ok, resumed.errors()
        assert active_resync(engine) is None
    assert _sent(world) - sent_once - first_part == left, "the resync started over"
    assert world.differences() == []


def test_resync_restart_starts_over(sqlite_world: World) -> None:
    world = sqlite_world
    world.sync()
    sent_once = _sent(world)
    with world.engine(chunk_size=20, on_progress=_fail_after_chunks(world, 3),
                      client=world.client(max_items=20, concurrency=1)) as engine:
        run_resync(engine)
    world.sandbox.faults.clear()
    before = _sent(world)
    with world.engine() as engine:
        restarted = run_resync(engine, restart=True)
    assert restarted.ok
    assert _sent(world) - before == sent_once


def test_resyncing_one_resource_does_not_restart_another_unfinished_one(
    sqlite_world: World,
) -> None:
    world = sqlite_world
    world.sync()
    with world.engine(chunk_size=20, on_progress=_fail_after_chunks(world, 3),
                      client=world.client(max_items=20, concurrency=1)) as engine:
        run_resync(engine, [Resource.ORDERS])
        orders_left = engine.state.forced_count("orders")
    assert 0 < orders_left < 200
    world.sandbox.faults.clear()
    with world.engine() as engine:
        run_resync(engine, [Resource.CATEGORIES])
        assert engine.state.forced_count("orders") == orders_left
        assert Resource.ORDERS in (active_resync(engine) or [])
        resumed = run_resync(engine)
    assert resumed.resources[Resource.ORDERS].counts.forced == orders_left


# -- dry runs -------------------------------------------------------------------------------

def test_a_dry_run_writes_nothing_and_sends_nothing(world: World) -> None:
    before = _table_rows(world.state_url)
    report = world.sync(DRY, send=False)
    assert report.ok, report.errors()
    assert _table_rows(world.state_url) == before
    assert sum(world.sandbox.store.counts().values()) == 0
    orders = report.resources[Resource.ORDERS]
    assert orders.counts.new == 200
    assert orders.counts.waiting == 0, "a first dry run must not show orders as waiting"
    assert [s.change for s in orders.samples] == ["new"] * 3


def test_a_dry_run_shows_changes_gone_records_and_untags(sqlite_world: World) -> None:
    world = sqlite_world
    world.sync()
    mutate.set_order_status(world.shop, 1, 5)
    mutate.delete_order(world.shop, 2)
    with world.shop.connect() as conn:
        tagged = conn.execute(sa.text(
            "SELECT ct.customer_id, t.name FROM customer_tags ct JOIN tags t ON t.id = ct.tag_id"
            " ORDER BY ct.customer_id LIMIT 1")).one()
    mutate.remove_tag(world.shop, int(tagged[0]), str(tagged[1]))
    before = _table_rows(world.state_url)
    sent = _sent(world)
    report = world.sync(CycleOptions(dry_run=True, full=True), send=False)
    assert _table_rows(world.state_url) == before
    assert _sent(world) == sent
    orders, customers_rep = report.resources[Resource.ORDERS], report.resources[
        Resource.CUSTOMERS]
    assert orders.counts.changed == 1
    assert orders.counts.gone == 1
    assert {s.change for s in orders.samples} == {"changed", "gone"}
    assert customers_rep.counts.untagged == 1
    untag = [s for s in customers_rep.samples if s.change == "untag"]
    assert untag[0].payload["tags"] == [str(tagged[1])]


def test_a_dry_run_resync_counts_everything_as_forced_and_forces_nothing(
    sqlite_world: World,
) -> None:
    world = sqlite_world
    first = world.sync()
    before = _table_rows(world.state_url)
    with world.engine(send=False) as engine:
        report = run_resync(engine, dry_run=True)
        assert active_resync(engine) is None
        assert _forced(engine) == 0
    assert _total(report, "forced") == _total(first, "sent")
    assert _table_rows(world.state_url) == before


# -- mapping changes --------------------------------------------------------------------------

def _new_product_urls(mapping: dict[str, Any]) -> None:
    mapping["products"]["fields"]["url"]["template"] = "https://shop.example/item/{slug}"


def test_a_small_mapping_change_is_sent_at_once(sqlite_world: World) -> None:
    world = sqlite_world
    world.sync()
    world.edit_mapping(_new_product_urls)
    report = world.sync()
    products = report.resources[Resource.PRODUCTS]
    assert products.mode == "full"  # the cursor does not show a mapping change
    assert products.counts.changed == 30
    assert "mapping changed: 30 records change; sending them" in products.notes
    assert world.held("products", "1")["url"].startswith("https://shop.example/item/")


def test_a_large_mapping_change_is_held_until_accepted(sqlite_world: World) -> None:
    world = sqlite_world
    world.edit_mapping(lambda m: m.setdefault("sync", {}).update(hold_changes_over=10))
    world.sync()
    sent = _sent(world)
    world.edit_mapping(_new_product_urls)
    held = world.sync()
    products = held.resources[Resource.PRODUCTS]
    assert products.mode == "held"
    assert "30 records would be resent" in products.notes[0]
    assert "cdc-sync resync products --confirm" in products.notes[0]
    assert {s.change for s in products.samples} == {"changed"}
    assert _sent(world) == sent
    assert held.resources[Resource.ORDERS].error is None

    # Held, the products go on syncing on the mapping applied before: a real price change
    # still goes out (with the old URL), and the change stays held.
    old_url = world.held("products", "1")["url"]
    mutate.set_product_price(world.shop, 1, Decimal("12.34"))
    still = world.sync()
    products = still.resources[Resource.PRODUCTS]
    assert products.mode == "held"
    assert products.counts.sent == 1
    assert "synced on the mapping applied before" in products.notes[-1]
    assert world.held("products", "1")["price"] == 12.34
    assert world.held("products", "1")["url"] == old_url
    assert not old_url.startswith("https://shop.example/item/")
    assert world.sync().resources[Resource.PRODUCTS].mode == "held"  # still held
    dry = world.sync(DRY, send=False)
    assert dry.resources[Resource.PRODUCTS].counts.changed == 30
    assert "the mapping changed since the last sync" in dry.resources[Resource.PRODUCTS].notes[0]

    accepted = world.sync(CycleOptions(accept_mapping=True))
    assert accepted.resources[Resource.PRODUCTS].counts.sent == 30
    after = world.sync()
    assert after.resources[Resource.PRODUCTS].mode != "held"
    assert world.differences() == []


def test_resync_confirm_releases_a_held_mapping_change(sqlite_world: World) -> None:
    world = sqlite_world
    world.edit_mapping(lambda m: m.setdefault("sync", {}).update(hold_changes_over=10))
    world.sync()
    world.edit_mapping(_new_product_urls)
    with world.engine() as engine:
        held = run_resync(engine, [Resource.PRODUCTS])
        assert held.resources[Resource.PRODUCTS].mode == "held"
        confirmed = run_resync(engine, [Resource.PRODUCTS], confirm=True)
        assert active_resync(engine) is None
    assert confirmed.resources[Resource.PRODUCTS].counts.sent == 30
    assert world.differences() == []


def test_an_incremental_dry_run_counts_a_pending_record_once(sqlite_world: World) -> None:
    world = sqlite_world
    with world.shop.connect() as conn:
        customer_id, order_id = conn.execute(sa.text(
            "SELECT customer_id, MIN(id) FROM orders WHERE customer_id IS NOT NULL "
            "GROUP BY customer_id ORDER BY COUNT(*), customer_id LIMIT 1")).one()
    mutate.rename_customer(world.shop, int(customer_id), "Bad\x01Name")
    world.sync()  # the customer is rejected, its order waits (pending)
    mutate.set_order_status(world.shop, int(order_id), 4)  # and changes: both passes see it
    report = world.sync(DRY, send=False)
    orders = report.resources[Resource.ORDERS]
    assert orders.mode == "incremental dry-run"
    assert orders.counts.retried == 1
    assert orders.counts.waiting == 1
