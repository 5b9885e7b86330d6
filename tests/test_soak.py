"""The soak (scripts/soak.py): a short run converges and prints its figures; its check sees a
sandbox that differs from the shop; and what the soak found, pinned.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.demo import mutate
from cdc_sync.state import Status
from helpers.outages import DaemonProcess, wait_until
from helpers.world import ShopSize, World
from helpers.worlds import world_fixture

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"

FIGURES = ("changes applied", "records sent", "retries", "duplicates sent", "kills survived",
           "time to converge")


def test_a_short_soak_with_kills_and_faults_converges_and_prints_the_figures(
        tmp_path: Path) -> None:
    workdir = tmp_path / "soak"
    run = subprocess.run(
        [sys.executable, str(SCRIPTS / "soak.py"), "--seconds", "25", "--seed", "5",
         "--kills", "2", "--customers", "120", "--workdir", str(workdir)],
        capture_output=True, text=True, timeout=150, check=False, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "CONVERGED: the sandbox equals the shop" in out
    for figure in FIGURES:
        assert re.search(rf"^{figure}\s+\d", out, re.M), f"no {figure!r} figure:\n{out}"
    assert re.search(r"^kills survived\s+2 SIGKILLs; 0 exits", out, re.M), out
    changes = int(re.search(r"^changes applied\s+(\d+)", out, re.M).group(1))  # type: ignore[union-attr]
    assert changes > 100, "the writer hardly wrote: the soak proved little"
    faults = re.search(r"^requests\s+(.*)$", out, re.M).group(1)  # type: ignore[union-attr]
    assert re.search(r"\b(429|500|502|dropped): [1-9]", faults), faults
    assert len(list(workdir.glob("daemon-*.log"))) == 3  # the first daemon and two restarts


world = world_fixture()


def _verdict_problems(world: World) -> list[str]:
    """What the soak's own check (scripts/soak_check.py) says is wrong."""
    if str(SCRIPTS) not in sys.path:
        sys.path.append(str(SCRIPTS))  # where `python scripts/soak.py` finds it
    soak_check = importlib.import_module("soak_check")
    shop = soak_check.snapshot(world.shop_url, world.mapping.path)
    rows = soak_check.state_rows(world.state_url)
    return [*soak_check.sandbox_differences(shop, rows, world.sandbox),
            *soak_check.state_disagreements(shop, rows, world.sandbox)]


def test_the_soak_check_finds_a_record_the_sandbox_holds_in_another_version(
        world: World) -> None:
    assert world.sync().ok
    assert _verdict_problems(world) == []
    email = next(iter(world.sandbox.store.records("customers")))
    stale = {**world.held("customers", email), "firstName": "Stale"}
    world.sandbox.store.apply("customer", [stale])  # as if an old request landed late

    problems = _verdict_problems(world)
    assert any(email in p and "firstName" in p for p in problems), problems


def test_the_soak_check_allows_records_gone_from_the_shop_but_not_unknown_ones(
        world: World) -> None:
    assert world.sync().ok
    mutate.delete_order(world.shop, 3)
    assert world.sync(CycleOptions(full=True)).ok
    assert world.rows(Resource.ORDERS, ["3"])["3"].status is Status.GONE
    assert _verdict_problems(world) == []  # Metrilo keeps order 3: allowed, state says gone

    world.sandbox.store.apply("order", [{**world.held("orders", "4"), "id": "999999"}])
    assert any("999999" in p for p in _verdict_problems(world))


# -- found by the soak ------------------------------------------------------------------------


def test_one_of_three_deleted_products_leaving_the_orders_is_marked_gone_not_refused(
        world: World) -> None:
    # Two products deleted after being ordered: with the demo's own, three deleted products
    # (the soak's shop had three when it happened there). Then every order holding the demo's
    # deleted product is purged, so that product is gone from the shop altogether.
    for product in (5, 6):
        mutate.delete_product(world.shop, product)
    assert world.sync().ok
    assert world.state().count_by_status("deleted_products")[Status.SYNCED] == 3
    gadget = next(key for key, record in world.sandbox.store.records("products").items()
                  if record["name"] == "Discontinued Gadget")
    for order in _orders_with_product(world, int(gadget)):
        mutate.delete_order(world.shop, order)

    reports = [world.sync(CycleOptions(full=True)) for _ in range(3)]

    # Today every one of them fails deleted_products with "more than sync.delete_guard=20% of
    # the 3 records Metrilo holds would be gone", and the daemon alerts on every cycle.
    assert [r.errors() for r in reports] == [[], [], []]
    assert world.rows(Resource.DELETED_PRODUCTS, [gadget])[gadget].status is Status.GONE


@pytest.mark.timeout(60)
def test_a_timed_out_attempt_applied_late_does_not_leave_metrilo_on_the_older_version(
        world: World) -> None:
    daemon = DaemonProcess.start(world, CDC_SYNC_HTTP_TIMEOUT="0.5")
    try:
        daemon.wait_for(r"sync cycle ok in \S+: nothing to send")
        # The shop's last customer: the daemon's slices (one key a cycle from the lowest) do
        # not reach it in the test, so only the customers' cursor sends its renames.
        customer = ShopSize().customers
        email = _email(world, customer)
        # The next customer request hangs for 4 s (then Metrilo applies it anyway); the
        # client gives up after 0.5 s and its retry goes through at once.
        world.sandbox.faults.update({"delay_rate": 1.0, "delay": 4, "limit": 1,
                                     "paths": ["customer/batch"]})
        mutate.rename_customer(world.shop, customer, "First")
        wait_until(lambda: world.held("customers", email)["firstName"] == "First", 10,
                   "the retried request")
        mutate.rename_customer(world.shop, customer, "Second")
        wait_until(lambda: world.held("customers", email)["firstName"] == "Second", 10,
                   "the newer version")
        wait_until(lambda: world.held("customers", email)["firstName"] == "First", 10,
                   "the hung first attempt to land")  # Metrilo now holds the older version

        # The batch that carried "First" saw an attempt with no answer, so its record is sent
        # once more after 10 HTTP timeouts (5 s here), as it is then: "Second".
        wait_until(lambda: world.held("customers", email)["firstName"] == "Second", 15,
                   "the recheck after the unanswered attempt")
        idle = r"sync cycle ok in \S+: nothing to send"
        daemon.wait_for(idle, count=daemon.count(idle) + 2)  # and it is sent only once more
        assert world.held("customers", email)["firstName"] == "Second"
    finally:
        daemon.stop()


def _email(world: World, customer_id: int) -> str:
    with world.shop.connect() as conn:
        return str(conn.exec_driver_sql("SELECT email FROM customers WHERE id = ?",
                                        (customer_id,)).scalar_one())


def _orders_with_product(world: World, product: int) -> list[int]:
    with world.shop.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT DISTINCT order_id FROM order_lines WHERE product_id = ?", (product,))
        return [int(order) for (order,) in rows]
