"""Editing mappings.yaml under a running daemon: checked, swapped in between cycles, never lost.

Each test runs `cdc-sync run` in a subprocess (the harness of helpers/daemon.py: a SQLite demo
shop, the real sandbox in this process, a SQLite state DB), edits its mapping file the way a
user would, and checks what reached the sandbox and what `cdc-sync status` and /healthz say.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.demo import mutate
from cdc_sync.demo.generate import SMALL
from cdc_sync.state import Status
from helpers.daemon import FIRST_CYCLE, Daemon, World, daemon_world
from helpers.outages import wait_until
from helpers.world import mapping_file

pytestmark = pytest.mark.timeout(60)

HOLD_OVER = 60  # more than the demo's 40 customers and 25 products, less than its 120 orders
UPPER_STATUSES = {1: "PENDING", 2: "PROCESSING", 3: "COMPLETED", 4: "CANCELLED", 5: "REFUNDED"}
Edit = Callable[[dict[str, Any]], None]
# The shop's last customer: a change the daemon must send through its change detection, not
# through the rolling reconciliation, whose slices walk the keys from the lowest, one a cycle
# on a shop this small (a 15-minute window of 1-second cycles), and reach it after the test.
LAST_CUSTOMER = SMALL.customers


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from daemon_world(tmp_path, f"sqlite:///{tmp_path}/state.sqlite")


def write_mapping(world: World, *edits: Edit) -> Path:
    """The demo mapping with a low hold threshold, edited, written where the daemon reads it."""
    def edit(data: dict[str, Any]) -> None:
        data["sync"] = {"hold_changes_over": HOLD_OVER}
        for change in edits:
            change(data)
    return mapping_file(world.tmp, edit)


def start(world: World, *args: str, **env: str) -> tuple[Daemon, str]:
    """A daemon on the mapping written last, with its health endpoint; (daemon, base URL)."""
    daemon = world.start("--http-port", "0", *args,
                         CDC_SYNC_MAPPINGS=str(world.tmp / "mappings.yaml"), **env)
    return daemon, daemon.health_url()


def status(world: World) -> str:
    """What `cdc-sync status` prints, from another process."""
    done = subprocess.run(
        [sys.executable, "-m", "cdc_sync", "status"], cwd=world.tmp, capture_output=True,
        text=True, timeout=30, check=False,
        env=world.env(CDC_SYNC_MAPPINGS=str(world.tmp / "mappings.yaml")),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def health(base: str) -> tuple[int, dict[str, Any]]:
    answer = httpx.get(f"{base}/healthz")
    return answer.status_code, answer.json()


def accepted(world: World, resource: str) -> int:
    """Records the sandbox accepted for `resource` so far (resent ones count again)."""
    return int(world.sandbox.store.stats()["items_accepted"].get(resource, 0))


def shop_value(world: World, sql: str) -> Any:
    with world.shop().connect() as conn:
        return conn.execute(sa.text(sql)).scalar_one()


def mapped_status_orders(world: World) -> int:
    """Orders whose status code the map names (the others fall back to its default)."""
    return int(shop_value(world, f"SELECT COUNT(*) FROM orders WHERE status IN "
                                 f"({', '.join(str(code) for code in UPPER_STATUSES)})"))


def held_status(world: World) -> str:
    """The status the sandbox holds for the first order whose status code the map names."""
    first = shop_value(world, f"SELECT MIN(id) FROM orders WHERE status IN "
                              f"({', '.join(str(code) for code in UPPER_STATUSES)})")
    return str(world.held("orders", str(first))["status"])


def orders_status_map(statuses: dict[int, str]) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        data["orders"]["fields"]["status"]["map"] = statuses
    return edit


def without_categories(data: dict[str, Any]) -> None:
    del data["categories"]


def without_product_categories(data: dict[str, Any]) -> None:
    del data["products"]["children"]["categories"]


def idle_cycles(daemon: Daemon, more: int) -> None:
    """Wait for `more` further cycles that had nothing to send."""
    idle = r"sync cycle ok in \S+: nothing to send"
    daemon.wait_for(idle, count=daemon.log().count("nothing to send") + more)


# -- valid edits -------------------------------------------------------------------------------


def test_a_small_edit_is_measured_then_sent_at_the_next_tick_and_nothing_else_is(
        world: World) -> None:
    world.seed()
    write_mapping(world)
    daemon, base = start(world)
    daemon.wait_for(FIRST_CYCLE)
    refunded = shop_value(world, "SELECT COUNT(*) FROM orders WHERE status = 5")
    assert 0 < refunded < HOLD_OVER
    before = accepted(world, "orders")

    write_mapping(world, orders_status_map(
        {1: "pending", 2: "processing", 3: "completed", 4: "cancelled", 5: "returned"}))
    daemon.wait_for(r"mappings\.yaml reloaded: changed orders")  # by the poll: no SIGHUP
    daemon.wait_for(rf"orders: mapping changed: {refunded} records change; sending them")
    daemon.wait_for(r"orders: sample changed \d+: .*\"status\": \"returned\"")
    refunded_id = shop_value(world, "SELECT MIN(id) FROM orders WHERE status = 5")
    wait_until(lambda: world.held("orders", str(refunded_id))["status"] == "returned", 10,
               "the new status to reach the sandbox")
    idle_cycles(daemon, 1)

    assert accepted(world, "orders") == before + refunded  # only the records the edit touched
    code, body = health(base)
    assert (code, body["status"], body["mapping_problems"], body["held_mapping_changes"]) == (
        200, "ok", [], {})
    assert "held" not in status(world)
    assert daemon.stop() == 0


def test_a_large_edit_is_held_and_shown_until_resync_confirm_releases_it(world: World) -> None:
    from cdc_sync.daemon import resync_or_hand_over

    world.seed()
    write_mapping(world)
    daemon, base = start(world, CDC_SYNC_HEALTH_FAILS_ON_HOLD="1")
    daemon.wait_for(FIRST_CYCLE)
    requests_before = world.requests("order/batch")
    touched = mapped_status_orders(world)
    assert touched > HOLD_OVER

    write_mapping(world, orders_status_map(UPPER_STATUSES))
    daemon.wait_for(rf"orders: mapping changed: {touched} records would be resent \(more than "
                    rf"sync.hold_changes_over={HOLD_OVER}\); held until")
    daemon.wait_for(rf"orders: mapping changed: {touched} records would be resent", count=2)
    assert world.requests("order/batch") == requests_before  # measured, nothing sent
    code, body = health(base)
    assert (code, body["status"], body["held_mapping_changes"]) == (503, "degraded",
                                                                   {"orders": touched})

    # Held, the orders go on syncing on the mapping applied before: a real change goes out.
    # The last pending order: the slices, from the lowest order, do not reach it in the test.
    order = int(shop_value(world, "SELECT MAX(id) FROM orders WHERE status = 1"))
    assert order > SMALL.orders // 2, "the seed has no late pending order: pick another"
    mutate.set_order_status(world.shop(), order, 4)
    wait_until(lambda: world.held("orders", str(order))["status"] == "cancelled", 15,
               "the cancellation sent, as the mapping applied before says it")
    assert world.requests("order/batch") == requests_before + 1  # that order alone
    assert (f"held: the orders mapping changed ({touched} records would be resent)"
            in status(world))

    with resync_or_hand_over(world.state_url, [Resource.ORDERS], confirm=True) as handed:
        assert handed is not None
    daemon.wait_for(r"resync cycle ok in \S+: .*orders 120 sent")
    assert world.held("orders", str(order))["status"] == UPPER_STATUSES[4]
    assert held_status(world) in UPPER_STATUSES.values()
    code, body = health(base)
    assert (code, body["status"], body["held_mapping_changes"]) == (200, "ok", {})
    assert "held" not in status(world)
    assert daemon.stop() == 0


def test_the_apply_policy_sends_a_large_edit_once_measured(world: World) -> None:
    world.seed()
    write_mapping(world)
    daemon, base = start(world, CDC_SYNC_MAPPING_CHANGES="apply")
    daemon.wait_for(FIRST_CYCLE)
    before = accepted(world, "orders")
    touched = mapped_status_orders(world)
    assert touched > HOLD_OVER

    write_mapping(world, orders_status_map(UPPER_STATUSES))
    daemon.wait_for(rf"orders: mapping changed: {touched} records change; sending them")
    daemon.wait_for(rf"sync cycle ok in \S+: .*orders {touched} sent")
    assert accepted(world, "orders") == before + touched
    assert held_status(world) in UPPER_STATUSES.values()
    assert health(base)[1]["held_mapping_changes"] == {}
    assert daemon.stop() == 0


def test_sighup_checks_and_applies_an_edit_at_once(world: World) -> None:
    world.seed()
    write_mapping(world)
    # The watch polls every 30 s here: only SIGHUP can make the edit apply within seconds.
    daemon, _ = start(world, CDC_SYNC_POLL_SECONDS="30")
    daemon.wait_for(FIRST_CYCLE)

    def new_url(data: dict[str, Any]) -> None:
        data["categories"]["fields"]["url"]["template"] = "https://shop.example/cat/{slug}"
    write_mapping(world, new_url)
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(lambda: world.held("categories", "1")["url"].startswith("https://shop.example/"),
               8, "the edited categories in the sandbox")
    assert "reload requested" in daemon.log()

    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_for(r"mappings\.yaml: unchanged, and it still fits the shop")
    assert daemon.process.poll() is None
    assert daemon.stop() == 0


# -- refused edits -----------------------------------------------------------------------------


def test_malformed_yaml_is_refused_shown_with_its_line_and_cleared_once_fixed(
        world: World) -> None:
    world.seed()
    path = write_mapping(world)
    good = path.read_text(encoding="utf-8")
    daemon, base = start(world)
    daemon.wait_for(FIRST_CYCLE)

    path.write_text(good + "extra: a: b\n", encoding="utf-8")
    lines = len(good.splitlines()) + 1
    refusal = daemon.wait_for(r"the edit was not applied \(1 problem\); the daemon goes on "
                              r"with the last good mapping:\n\s+- (\S+): malformed YAML")
    assert refusal.group(1) == f"{path}:{lines}"
    code, body = health(base)
    assert (code, body["status"]) == (200, "degraded")
    assert body["mapping_problems"][0].startswith(f"{path}:{lines}: malformed YAML")
    shown = status(world)
    assert f"mapping: {path}: the edit was not applied" in shown
    assert f"  - {path}:{lines}: malformed YAML" in shown

    with world.shop().begin() as conn:  # the daemon still syncs, on the last good mapping
        conn.execute(sa.text("UPDATE categories SET name = 'Still synced' WHERE id = 2"))
    wait_until(lambda: world.held("categories", "2")["name"] == "Still synced", 10,
               "a change synced with the last good mapping")

    path.write_text(good, encoding="utf-8")
    wait_until(lambda: health(base)[1]["status"] == "ok", 10, "the problems to clear")
    wait_until(lambda: "mapping:" not in status(world), 10, "`status` to clear")
    assert "Traceback" not in daemon.log()
    assert daemon.stop() == 0


def test_an_unknown_column_is_refused_like_check_does_and_the_old_mapping_goes_on(
        world: World) -> None:
    world.seed()
    write_mapping(world)
    daemon, base = start(world)
    daemon.wait_for(FIRST_CYCLE)

    def typo(data: dict[str, Any]) -> None:
        data["customers"]["fields"]["lastName"] = "last_nmae"
    path = write_mapping(world, typo)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1)
                if "last_nmae" in text)
    where = f"{path}:{line} (customers.fields.lastName"
    daemon.wait_for(r"the edit was not applied")
    assert where in daemon.log()
    assert "last_nmae" in daemon.log()
    code, body = health(base)
    assert (code, body["status"]) == (200, "degraded")
    assert any(p.startswith(where) and "last_nmae" in p for p in body["mapping_problems"])
    assert f"  - {where}" in status(world)

    email = shop_value(world, f"SELECT email FROM customers WHERE id = {LAST_CUSTOMER}")
    last_name = shop_value(world, f"SELECT last_name FROM customers WHERE id = {LAST_CUSTOMER}")
    with world.shop().begin() as conn:
        conn.execute(sa.text("UPDATE customers SET first_name = 'Edited', "
                             f"updated_at = CURRENT_TIMESTAMP WHERE id = {LAST_CUSTOMER}"))
    wait_until(lambda: world.held("customers", email).get("firstName") == "Edited", 10,
               "the customer change, composed with the last good mapping")
    assert world.held("customers", email)["lastName"] == last_name
    assert daemon.stop() == 0


# -- resources added and removed ---------------------------------------------------------------


def test_an_added_resource_is_imported_in_the_same_cycle_before_the_products_using_it(
        world: World) -> None:
    world.seed()
    write_mapping(world, without_categories, without_product_categories)
    daemon, _ = start(world)
    daemon.wait_for(FIRST_CYCLE)
    assert world.sandbox.store.counts()["categories"] == 0

    write_mapping(world)
    daemon.wait_for(r"categories: newly mapped")
    daemon.wait_for(r"sync cycle ok in \S+: .*categories 6 sent.*products 25 sent")
    with world.state() as state:  # the next cycle may have begun already
        run = next(r for r in state.last_runs(5) if r.status != "running")
    assert run.counts["categories"]["sent"] == 6
    assert run.counts["products"]["sent"] == 25
    categories_done = _synced_at(world, "MAX", "categories")
    products_begun = _synced_at(world, "MIN", "products")
    assert categories_done <= products_begun  # Metrilo's import order, within the one cycle
    assert world.held("products", "1")["categories"]
    assert daemon.stop() == 0


def _synced_at(world: World, extreme: str, resource: str) -> str:
    state = sa.create_engine(world.state_url)
    try:
        with state.connect() as conn:
            return str(conn.execute(sa.text(
                f"SELECT {extreme}(synced_at) FROM sync_state WHERE resource = :r"),
                {"r": resource}).scalar_one())
    finally:
        state.dispose()


def test_a_removed_resource_stops_keeps_its_state_and_comes_back_sending_only_changes(
        world: World) -> None:
    world.seed()
    write_mapping(world)
    daemon, _ = start(world)
    daemon.wait_for(FIRST_CYCLE)
    assert accepted(world, "categories") == 6
    requests = world.requests("category/batch")

    write_mapping(world, without_categories)
    daemon.wait_for(r"categories: no longer mapped: it stops syncing; its state is kept")
    with world.shop().begin() as conn:
        conn.execute(sa.text("UPDATE categories SET name = 'Renamed meanwhile' WHERE id = 3"))
    idle_cycles(daemon, 2)
    assert world.held("categories", "3")["name"] != "Renamed meanwhile"
    assert world.requests("category/batch") == requests
    with world.state() as state:
        assert state.count_by_status("categories")[Status.SYNCED] == 6
    assert "categories" in status(world)

    write_mapping(world)
    wait_until(lambda: world.held("categories", "3")["name"] == "Renamed meanwhile", 10,
               "the category renamed while unmapped")
    idle_cycles(daemon, 1)
    assert accepted(world, "categories") == 6 + 1  # not the whole resource again
    assert world.requests("category/batch") == requests + 1
    assert daemon.stop() == 0


# -- nothing lost ------------------------------------------------------------------------------


def test_records_rejected_or_pending_under_the_old_mapping_are_sent_with_the_new_one(
        world: World) -> None:
    def typo_field(data: dict[str, Any]) -> None:
        data["categories"]["fields"]["title"] = "name"  # Metrilo has no such field

    world.seed()
    write_mapping(world, typo_field)
    daemon, base = start(world)
    daemon.wait_for(r"sync cycle rejected 6 records in \S+: customers 40 sent.*categories 6 "
                    r"rejected")
    assert world.sandbox.store.counts()["categories"] == 0
    assert "rejected 6x: title: is not a category field Metrilo knows" in status(world)

    world.sandbox.faults.update({"error_rate": 1.0})  # Metrilo is down during the edit
    mutate.rename_customer(world.shop(), LAST_CUSTOMER, "Pending")
    wait_until(lambda: _count(world, "customers", Status.PENDING) == 1, 10, "a pending customer")
    write_mapping(world)
    daemon.wait_for(r"mappings\.yaml reloaded: changed categories")
    daemon.wait_for(r"sync cycle failed", count=2)
    world.sandbox.faults.clear()

    daemon.wait_for(r"categories: mapping changed: 6 records change; sending them")
    wait_until(lambda: world.sandbox.store.counts()["categories"] == 6, 10,
               "the fixed categories in the sandbox")
    email = shop_value(world, f"SELECT email FROM customers WHERE id = {LAST_CUSTOMER}")
    wait_until(lambda: world.held("customers", email).get("firstName") == "Pending", 10,
               "the customer left pending by the outage")
    assert _count(world, "categories", Status.SYNCED) == 6
    assert _count(world, "categories", Status.REJECTED) == 0
    assert _count(world, "customers", Status.PENDING) == 0
    wait_until(lambda: health(base)[1]["status"] == "ok", 10, "/healthz to recover")
    assert daemon.stop() == 0


def _count(world: World, resource: str, status: Status) -> int:
    with world.state() as state:
        return state.count_by_status(resource)[status]
