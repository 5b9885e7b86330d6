"""Outages under a running daemon: the shop DB, the state DB and Metrilo go away and come back.

Each test runs `cdc-sync run` as a process against a demo shop and the real sandbox (kept in
this process, so the test can inject faults, stop it and look inside it), breaks something
real in the middle of a cycle (sessions killed with pg_terminate_backend or KILL, the state
file locked by another connection, Metrilo failing, hanging or restarting), and then checks
that the daemon kept running, backed off, recovered by itself, and lost nothing: the sandbox
equals the shop field by field, and no state row is `synced` for a record the sandbox does
not hold with that content (`state_problems`).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.demo import mutate
from cdc_sync.demo.generate import generate
from cdc_sync.mapping.loader import load_mapping
from cdc_sync.sandbox import Sandbox
from cdc_sync.state import StateRow, Status
from helpers.backends import SHOP_FIXTURE
from helpers.outages import (
    DaemonProcess,
    kill_mariadb_sessions,
    postgresql_down,
    sandbox_requests,
    sqlite_locked,
    state_problems,
    terminate_postgresql_sessions,
    wait_until,
)
from helpers.world import SECRET, TOKEN, ShopSize, World, mapping_file

pytestmark = pytest.mark.timeout(120)

# Enough orders that the streams of orders and order lines are still open (server-side
# cursors) when the test kills the sessions under them.
STREAMING = ShopSize(customers=200, categories=6, products=60, orders=3000)
SMALL = ShopSize(customers=60, categories=5, products=30, orders=200)
SLOW_ORDERS = {"delay_rate": 1.0, "delay": 0.05, "paths": ["order/batch"]}
IDLE = r"sync cycle ok in \S+: nothing to send"

KILL_SESSIONS: dict[str, Callable[[str], int]] = {
    "postgresql": terminate_postgresql_sessions,
    "mariadb": kill_mariadb_sessions,
}


@contextmanager
def outage_world(tmp: Path, shop_url: str, state_url: str, *, size: ShopSize = SMALL,
                 store_path: Path | None = None) -> Iterator[World]:
    """A seeded demo shop, a running sandbox (its store in `store_path`, if given), state."""
    shop = sa.create_engine(shop_url)
    generate(shop, customers=size.customers, categories=size.categories,
             products=size.products, orders=size.orders, seed=11)
    mapping = load_mapping(mapping_file(tmp))
    sandbox = Sandbox(token=TOKEN, secret=SECRET, store_path=store_path).start()
    world = World(tmp, shop_url, state_url, sandbox, shop, mapping)
    try:
        yield world
    finally:
        world.sandbox.stop()  # the test may have replaced it with a restarted one
        world.close()
        shop.dispose()


def _sqlite_state(tmp: Path) -> str:
    return f"sqlite:///{tmp}/state.sqlite"


def _held(world: World, resource: str) -> int:
    return world.sandbox.store.counts()[resource]


def _assert_converged(world: World, daemon: DaemonProcess) -> None:
    """Idle cycles follow, the sandbox equals the shop, state claims nothing it should not."""
    daemon.wait_for_more(IDLE, timeout=60)
    assert daemon.alive()
    assert world.differences() == []
    assert state_problems(world) == []
    assert world.sandbox.store.dropped_count() == 0
    assert "Traceback" not in daemon.log()


# -- the shop DB --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_shop_sessions_killed_mid_stream_fail_the_cycle_and_the_daemon_recovers(
        backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    shop_url = str(request.getfixturevalue(SHOP_FIXTURE[backend]))
    with outage_world(tmp_path, shop_url, _sqlite_state(tmp_path), size=STREAMING) as world:
        world.sandbox.faults.update(SLOW_ORDERS)
        daemon = DaemonProcess.start(world)
        wait_until(lambda: _held(world, "orders") >= 100, 60, "orders to stream")

        assert KILL_SESSIONS[backend](shop_url) >= 1
        failure = daemon.wait_for(r"sync cycle (partly )?failed")
        assert re.search(r"orders: reading .* failed", failure), failure
        assert _held(world, "orders") < STREAMING.orders  # it was stopped halfway

        if backend == "postgresql":  # then the server is down for a while: connecting fails
            with postgresql_down(shop_url):
                daemon.wait_for_more(r"sync cycle failed .* next attempt in")
                daemon.wait_for_more(r"sync cycle failed .* next attempt in")
        world.sandbox.faults.clear()
        _assert_converged(world, daemon)
        assert daemon.stop() == 0


# -- the state DB -------------------------------------------------------------------------------


def test_sqlite_state_locked_by_another_connection_mid_cycle_resends_what_it_could_not_record(
        tmp_path: Path, sqlite_url: str) -> None:
    state_path = tmp_path / "state.sqlite"
    with outage_world(tmp_path, sqlite_url, f"sqlite:///{state_path}") as world:
        world.sandbox.faults.update({"delay_rate": 1.0, "delay": 0.1})
        daemon = DaemonProcess.start(world, CDC_SYNC_BATCH_SIZE="5", CDC_SYNC_CONCURRENCY="1")
        wait_until(lambda: _held(world, "customers") >= 10, 30, "the first customer batches")

        # Longer than the state engine's busy timeout (10 s): a write must fail, not just wait.
        with sqlite_locked(state_path, seconds=11):
            # Metrilo keeps answering 200 meanwhile; state cannot record it.
            wait_until(lambda: _held(world, "customers") >= 20, 30, "batches under the lock")
        world.sandbox.faults.clear()

        failure = daemon.wait_for(r"sync cycle failed .*database is locked.* next attempt in")
        assert "another process holds a lock on the state DB" in failure
        _assert_converged(world, daemon)
        # Records Metrilo took while state was locked were sent again: at least once.
        assert world.sandbox.store.stats()["duplicates"].get("customers", 0) >= 1
        assert daemon.stop() == 0


def test_postgresql_state_down_mid_cycle_the_daemon_stands_by_then_resumes(
        tmp_path: Path, sqlite_url: str, pg_url: str) -> None:
    with outage_world(tmp_path, sqlite_url, pg_url, size=STREAMING) as world:
        world.sandbox.faults.update(SLOW_ORDERS)
        daemon = DaemonProcess.start(world)
        wait_until(lambda: _held(world, "orders") >= 100, 60, "orders to stream")

        with postgresql_down(pg_url):
            daemon.wait_for(r"lost the lease")
            # While it is down, the daemon keeps trying (and failing) to take the lease back.
            daemon.wait_for(r"standby: cannot reach the state DB for the lease")
            assert daemon.alive()
            assert daemon.count(r"active: this daemon holds the lease") == 1
            held_while_down = _held(world, "orders")
        assert held_while_down < STREAMING.orders  # it was stopped halfway
        world.sandbox.faults.clear()

        daemon.wait_for(r"active: this daemon holds the lease", count=2)
        _assert_converged(world, daemon)
        assert daemon.stop() == 0


# -- Metrilo ------------------------------------------------------------------------------------


# The shop's last customer, and orders near the last: the changes the outage holds up must
# reach Metrilo through the daemon's change detection, not through the rolling reconciliation,
# whose slices walk the keys from the lowest, one a cycle on a shop this small (a 15-minute
# window), and reach these only after the test.
CHANGED_CUSTOMER = SMALL.customers
CANCELLED = 4


def _change_the_shop(world: World) -> int:
    """A customer renamed, an order cancelled, a new guest order: what the outage holds up.
    Returns the cancelled order: the last one not cancelled already (a status set to what it
    was would change nothing to send)."""
    mutate.rename_customer(world.shop, CHANGED_CUSTOMER, "Outage")
    with world.shop.connect() as conn:
        order = int(conn.execute(sa.text("SELECT MAX(id) FROM orders WHERE status <> :s"),
                                 {"s": CANCELLED}).scalar_one())
    assert order > SMALL.orders - 10, "the seed cancelled the last orders: pick another way"
    mutate.set_order_status(world.shop, order, CANCELLED)
    mutate.add_order(world.shop, email="during.outage@example.org", lines=[(2, 1)])
    return order


def _failures(daemon: DaemonProcess) -> list[tuple[float, float]]:
    """(when it was logged, how long the cycle took) of each failed sync cycle."""
    found = re.findall(r"^(\S+ [\d:]+),(\d+) ERROR .*sync cycle failed after ([\d.]+)s",
                       daemon.log(), re.M)
    return [(time.mktime(time.strptime(day, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000,
             float(took)) for day, ms, took in found]


def _waits_between_failures(daemon: DaemonProcess) -> list[float]:
    # From one failure to the next: the daemon's wait, then the next cycle's own run time.
    failures = _failures(daemon)
    return [later - earlier - took
            for (earlier, _), (later, took) in itertools.pairwise(failures)]


def test_metrilo_answering_5xx_for_a_long_stretch_the_daemon_backs_off_then_catches_up(
        tmp_path: Path, sqlite_url: str) -> None:
    with outage_world(tmp_path, sqlite_url, _sqlite_state(tmp_path)) as world:
        daemon = DaemonProcess.start(world, CDC_SYNC_BACKOFF_MAX="1.2")
        daemon.wait_for(IDLE)
        world.sandbox.faults.update({"error_rate": 1.0})
        order = _change_the_shop(world)

        daemon.wait_for(r"sync cycle failed .*Metrilo.* next attempt in", count=4)
        waits = _waits_between_failures(daemon)
        # The waits double from one interval (0.3 s) up to CDC_SYNC_BACKOFF_MAX (1.2 s); the
        # log gives cycle times to 0.1 s, hence the slack.
        assert waits[2] > waits[0] + 0.6, waits
        assert waits[2] >= 1.1, waits
        assert daemon.alive()
        assert world.held("customers", _email(world, CHANGED_CUSTOMER))["firstName"] != "Outage"
        assert _customer_row(world).status is Status.PENDING
        requests = sandbox_requests(world, "customer/batch")
        assert requests <= 4 * len(_failures(daemon)), "no backoff: it hammers a failing Metrilo"

        world.sandbox.faults.clear()
        _assert_converged(world, daemon)
        assert world.held("customers", _email(world, CHANGED_CUSTOMER))["firstName"] == "Outage"
        assert world.held("orders", str(order))["status"] == "cancelled"
        assert daemon.stop() == 0


def test_metrilo_hanging_past_the_http_timeout_fails_cycles_until_it_answers_again(
        tmp_path: Path, sqlite_url: str) -> None:
    with outage_world(tmp_path, sqlite_url, _sqlite_state(tmp_path)) as world:
        daemon = DaemonProcess.start(world, CDC_SYNC_HTTP_TIMEOUT="0.5")
        daemon.wait_for(IDLE)
        world.sandbox.faults.update({"delay_rate": 1.0, "delay": 5})
        _change_the_shop(world)

        failure = daemon.wait_for(r"sync cycle failed .* next attempt in")
        assert re.search(r"time(d )?out", failure, re.I), failure
        daemon.wait_for_more(r"sync cycle failed .* next attempt in")
        assert daemon.alive()
        assert _customer_row(world).status is Status.PENDING

        world.sandbox.faults.clear()
        _assert_converged(world, daemon)
        assert world.held("customers", _email(world, CHANGED_CUSTOMER))["firstName"] == "Outage"
        assert daemon.stop() == 0


def test_sandbox_restarted_mid_cycle_on_the_same_port_and_store_the_daemon_carries_on(
        tmp_path: Path, sqlite_url: str) -> None:
    store = tmp_path / "sandbox-store.sqlite"
    with outage_world(tmp_path, sqlite_url, _sqlite_state(tmp_path), store_path=store) as world:
        world.sandbox.faults.update({"delay_rate": 1.0, "delay": 0.1})
        daemon = DaemonProcess.start(world, CDC_SYNC_BATCH_SIZE="5", CDC_SYNC_CONCURRENCY="1")
        wait_until(lambda: _held(world, "customers") >= 20, 30, "the first customer batches")
        port = urlsplit(world.sandbox.base).port

        world.sandbox.stop()
        failure = daemon.wait_for(r"sync cycle failed .* next attempt in")
        assert re.search(r"refused|disconnected|reset", failure), failure
        daemon.wait_for_more(r"sync cycle failed .* next attempt in")  # still down: again
        assert daemon.alive()
        world.sandbox = Sandbox(token=TOKEN, secret=SECRET, port=port or 0,
                                store_path=store).start()
        assert world.sandbox.store.counts()["customers"] >= 20  # it kept what it had
        assert world.sandbox.store.counts()["orders"] == 0  # stopped mid-cycle, before orders

        _assert_converged(world, daemon)
        assert daemon.stop() == 0


def _customer_row(world: World) -> StateRow:
    key = str(CHANGED_CUSTOMER)
    return world.rows(Resource.CUSTOMERS, [key])[key]


def _email(world: World, customer_id: int) -> str:
    with world.shop.connect() as conn:
        return str(conn.execute(sa.text("SELECT email FROM customers WHERE id = :i"),
                                {"i": customer_id}).scalar_one())
