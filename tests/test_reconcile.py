"""Rolling reconciliation: what no cursor shows arrives within sync.full_reconcile_minutes, a
key-range slice per cycle, and a slice killed halfway is read again, not skipped.

Cycles are driven one by one with an injected clock (60 s apart, the daemon's interval passed
as the engine's `intervals`), so the window's 15 minutes pass without sleeping.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from cdc_sync.core.report import CycleReport
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.cycle.reconcile import Window, progress
from cdc_sync.cycle.statewriter import DEPTH as STATE_WRITES_QUEUED
from cdc_sync.demo import mutate, schema
from cdc_sync.state import Status
from cdc_sync.state.rows import Outcome
from helpers.backends import COMBINATIONS, FEW_COMBINATIONS
from helpers.cli import cli_env, command, run_cli
from helpers.outages import DaemonProcess, wait_until
from helpers.world import ShopSize, World, demo_world
from helpers.worlds import world_fixture

INTERVAL = 60.0
EVERY_MINUTE = dict.fromkeys(Resource, INTERVAL)
WINDOW_CYCLES = 15  # the default window (15 minutes) over 60-second cycles


class Clock:
    """The engine's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


world = world_fixture(COMBINATIONS)


def _cycle(world: World, clock: Clock) -> CycleReport:
    clock.now += INTERVAL
    report = world.sync(CycleOptions(intervals=EVERY_MINUTE), clock=clock)
    assert report.ok, report.errors()
    return report


def _edit_line(world: World, order_id: int, quantity: int) -> None:
    """An order line edited in place: the order's updated_at (its cursor) does not move."""
    lines = schema.order_lines
    with world.shop.begin() as conn:
        line = conn.execute(sa.select(sa.func.min(lines.c.id))
                            .where(lines.c.order_id == order_id)).scalar_one()
        conn.execute(lines.update().where(lines.c.id == line).values(quantity=quantity))


def _registered_order(world: World, at_least: int) -> int:
    """An order of a registered customer (deleting it leaves no guest behind)."""
    orders = schema.orders
    with world.shop.connect() as conn:
        found = conn.execute(sa.select(sa.func.min(orders.c.id)).where(
            orders.c.customer_id.is_not(None), orders.c.id >= at_least)).scalar_one()
    assert isinstance(found, int)
    return found


def _quantities(world: World, order_id: int) -> list[int]:
    return [line["quantity"] for line in world.held("orders", str(order_id))["products"]]


def _sent(reports: list[CycleReport], resource: Resource) -> int:
    return sum(r.resources[resource].counts.sent for r in reports if resource in r.resources)


def test_changes_no_cursor_shows_arrive_within_the_window_and_nothing_else_is_resent(
    world: World,
) -> None:
    clock = Clock()
    assert world.sync(clock=clock).ok  # the first full read starts the window
    _edit_line(world, 3, 71)  # inside the first slice
    _edit_line(world, 190, 72)  # in one of the last
    deleted = _registered_order(world, 100)
    mutate.delete_order(world.shop, deleted)

    reports = []
    arrived: dict[str, int] = {}
    for cycle in range(1, WINDOW_CYCLES):  # the cycles within the window
        reports.append(_cycle(world, clock))
        if 71 in _quantities(world, 3):
            arrived.setdefault("early line", cycle)
        if 72 in _quantities(world, 190):
            arrived.setdefault("late line", cycle)
        if world.rows(Resource.ORDERS, [str(deleted)])[str(deleted)].status is Status.GONE:
            arrived.setdefault("delete", cycle)

    assert arrived["early line"] == 1
    assert 1 < arrived["late line"] < WINDOW_CYCLES
    assert "delete" in arrived
    # Each change was sent once; nothing unchanged was sent again.
    assert _sent(reports, Resource.ORDERS) == 2
    assert sum(r.resources[Resource.ORDERS].counts.gone for r in reports) == 1
    for resource in (Resource.CUSTOMERS, Resource.PRODUCTS, Resource.CATEGORIES):
        assert _sent(reports, resource) == 0, resource
    # Spread out: every slice read a share of the window, none the whole resource.
    slices = [r.resources[Resource.ORDERS].reconciled for r in reports]
    assert sum(slices) >= 199  # every order (one deleted) once
    assert max(slices) <= 2 * 200 / (WINDOW_CYCLES - 1)
    assert world.differences(extra_ok={"orders": {str(deleted)}}) == []

    windows = progress(world.state())
    assert windows["categories"]["mode"] == "every cycle"  # no cursor: read fully every cycle
    assert windows["guest_customers"]["summary"].startswith(
        "reconciliation: read fully once per window (derived from orders), last at ")
    shown = windows["orders"]
    assert shown["mode"] == "slices"
    assert shown["complete"]
    assert shown["share_read"] == 1.0
    assert shown["slice"] == WINDOW_CYCLES - 1


def test_a_window_goes_on_across_restarts_and_starts_again_after_a_full_read(
    world: World,
) -> None:
    clock = Clock()
    world.sync(clock=clock)
    for _ in range(3):
        _cycle(world, clock)  # each a fresh engine, as separate runs of cdc-sync
    stored = world.state().get_meta("reconcile:orders")
    assert stored is not None
    window = Window.from_json(stored)
    assert window.slices == 3
    assert not window.source_done
    assert window.after is not None
    assert 30 < int(window.after) < 60

    full = world.sync(CycleOptions(full=True), clock=clock)
    assert full.resources[Resource.ORDERS].mode == "full"
    restarted = Window.from_json(world.state().get_meta("reconcile:orders") or "")
    assert restarted.slices == 0
    assert restarted.after is None
    assert restarted.started == clock.now


def test_the_delete_guard_holds_per_slice(world: World) -> None:
    clock = Clock()
    world.sync(clock=clock)
    with world.shop.begin() as conn:  # the orders table emptied (lines stay: no cascade here)
        conn.execute(schema.order_coupons.delete())
        conn.execute(schema.orders.delete())
    report = world.sync(CycleOptions(intervals=EVERY_MINUTE, resources=(Resource.ORDERS,)),
                        clock=clock)
    error = report.resources[Resource.ORDERS].error
    assert error is not None
    assert "sync.delete_guard" in error
    assert world.state().count_by_status(Resource.ORDERS.value).get(Status.GONE, 0) == 0


# -- killed during a slice -------------------------------------------------------------------

SLICED = ShopSize(customers=100, categories=5, products=30, orders=1500)
SLICE = 100  # 1500 orders over a 15-minute window of 60-second one-shot syncs

sliced_world = world_fixture(FEW_COMBINATIONS, size=SLICED)


def _accepted(world: World) -> int:
    return int(world.sandbox.store.stats()["items_accepted"].get("orders", 0))


def _kill_after(world: World, process: subprocess.Popen[str], accepted: int) -> None:
    deadline = time.monotonic() + 120
    while _accepted(world) < accepted:
        assert process.poll() is None, "the sync ended before it could be killed"
        assert time.monotonic() < deadline, "the sync made no progress"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def test_a_sync_killed_during_a_slice_goes_on_from_it_and_skips_nothing(
    sliced_world: World,
) -> None:
    world = sliced_world
    assert world.sync().ok
    first_slice = range(1, SLICE + 1)
    with world.shop.begin() as conn:  # every line of the first slice's orders, no cursor moved
        conn.execute(schema.order_lines.update()
                     .where(schema.order_lines.c.order_id <= SLICE).values(quantity=99))
    before = _accepted(world)
    world.sandbox.faults.update({"delay_rate": 1.0, "delay": 0.05})
    env = cli_env(world, CDC_SYNC_BATCH_SIZE="10", CDC_SYNC_CONCURRENCY="1")
    process = subprocess.Popen(command("sync"), cwd=world.tmp, env=env, text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_after(world, process, before + 30)
    sent_before_kill = _accepted(world) - before
    assert sent_before_kill < SLICE
    window = Window.from_json(world.state().get_meta("reconcile:orders") or "")
    assert window.slices == 0
    assert window.after is None

    world.sandbox.faults.clear()
    again = run_cli(world, "sync", CDC_SYNC_BATCH_SIZE="10")
    assert again.returncode == 0, again.stderr
    for order_id in first_slice:
        assert set(_quantities(world, order_id)) == {99}, order_id
    # Only what the killed run had not recorded is sent again: the batch in flight, and the
    # batches Metrilo had answered whose state write had not committed yet (the one the
    # writer thread was writing and those queued behind it: cycle/statewriter.py). At least
    # once: a crash resends those, never skips them.
    assert SLICE <= _accepted(world) - before <= SLICE + 10 * (1 + 1 + STATE_WRITES_QUEUED)
    window = Window.from_json(world.state().get_meta("reconcile:orders") or "")
    assert window.slices == 1
    assert window.after is not None
    assert SLICE <= int(window.after) <= SLICE + 20  # a later start plans a little more


# -- the daemon ------------------------------------------------------------------------------


def _window(world: World) -> Window | None:
    stored = world.state().get_meta("reconcile:orders")
    return Window.from_json(stored) if stored else None


def _first_slice(world: World) -> Callable[[], Window | None]:
    def found() -> Window | None:
        window = _window(world)
        return window if window is not None and window.slices >= 1 else None
    return found


def test_the_daemon_sizes_slices_by_its_interval_and_its_own_cycles_find_a_delete(
    tmp_path: Path, sqlite_url: str,
) -> None:
    with demo_world(tmp_path, sqlite_url, f"sqlite:///{tmp_path}/state.sqlite") as world:
        world.edit_mapping(lambda m: m.update(sync={"full_reconcile_minutes": 0.1}))  # 6 s
        daemon = DaemonProcess.start(world, CDC_SYNC_INTERVAL="0.3")
        try:
            first = wait_until(_first_slice(world), 60, "the first reconciliation slice")
            # 0.3 s cycles over a 6 s window: many small slices (a one-shot sync's 60 s
            # assumption would have planned one).
            assert first is not None
            assert first.planned >= 5
            deleted = _registered_order(world, 100)
            mutate.delete_order(world.shop, deleted)
            wait_until(lambda: world.rows(Resource.ORDERS, [str(deleted)])[str(deleted)].status
                       is Status.GONE, 60, "the daemon's slices to find the deleted order")
            assert daemon.stop() == 0
        finally:
            daemon.kill()
        assert "Traceback" not in daemon.log()


# -- the deletion walk: state's keys inside each slice's key range ----------------------------

def test_a_slice_finds_the_deletions_inside_its_own_key_range(world: World) -> None:
    """State sorts keys as text ('10' before '2'); the first slice reads orders 1..~15 and
    checks exactly the keys state holds among them, so order 2..9 gone is found there."""
    clock = Clock()
    world.sync(clock=clock)
    deleted = _registered_order(world, 2)
    assert deleted < 10
    mutate.delete_order(world.shop, deleted)

    report = _cycle(world, clock)

    window = _window(world)
    assert window is not None
    assert window.slices == 1
    assert window.after is not None
    assert deleted < int(window.after) < 30
    assert report.resources[Resource.ORDERS].counts.gone == 1
    assert world.rows(Resource.ORDERS, [str(deleted)])[str(deleted)].status is Status.GONE


def test_keys_that_are_no_integers_text_are_checked_within_the_window(world: World) -> None:
    """A state row whose key no integer column can yield (typed by hand, another mapping's) is
    outside every numeric range: the window's last slice looks it up."""
    clock = Clock()
    world.sync(clock=clock)
    stray = ["007", "x-1"]
    world.state().mark_synced(Resource.ORDERS.value,
                              [Outcome(key, key, "fp") for key in stray])
    for _ in range(WINDOW_CYCLES):
        _cycle(world, clock)
    window = _window(world)
    assert window is not None
    assert window.complete
    found = world.rows(Resource.ORDERS, stray)
    assert [found[key].status for key in stray] == [Status.GONE, Status.GONE]


def test_a_window_saved_before_key_numbers_starts_again(world: World) -> None:
    """Its state position is a text key, meaningless to a walk by number."""
    clock = Clock()
    world.sync(clock=clock)
    old = Window(started=clock.now, seconds=900.0, total=200, after="150", done=150, slices=10,
                 state_after="35", last_slice=clock.now).to_json()
    stored = json.loads(old)
    del stored["walk"]  # as 0006's code saved it
    world.state().set_meta("reconcile:orders", json.dumps(stored))

    _cycle(world, clock)

    window = _window(world)
    assert window is not None
    assert (window.walk, window.slices) == ("span", 1)
    assert window.after is not None
    assert int(window.after) < 30
