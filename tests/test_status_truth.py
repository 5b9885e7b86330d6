"""`status` tells the truth about a cycle whose process was killed or stopped halfway.

Real processes: `cdc-sync run` and `cdc-sync sync` against the demo shop and the sandbox, which
answers orders slowly so the cycle is caught in the middle of them; then SIGKILL or SIGTERM,
and `cdc-sync status` (and `--json`) as a user would read it.
"""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from cdc_sync.state import RunStatus
from helpers.backends import BOTH_STATES
from helpers.cli import cli_env, command, run_cli
from helpers.outages import DaemonProcess, wait_until
from helpers.world import ShopSize, World
from helpers.worlds import world_fixture

pytestmark = pytest.mark.timeout(120)

# One order per request, each answered after 0.1 s: the orders take 20 s or more.
SLOW = {"CDC_SYNC_BATCH_SIZE": "1", "CDC_SYNC_CONCURRENCY": "1"}
SLOW_ORDERS = {"delay_rate": 1.0, "delay": 0.1, "paths": ["order/batch"]}
# A stop is honoured between chunks of 1000 records (the batches in flight finish): enough
# orders for a second chunk, sent 50 per request.
MANY_ORDERS = ShopSize(orders=2500)
BATCHES = {"CDC_SYNC_BATCH_SIZE": "50", "CDC_SYNC_CONCURRENCY": "1"}


def _slow_orders(world: World) -> None:
    world.sandbox.faults.update(SLOW_ORDERS)


world = world_fixture(BOTH_STATES, prepare=_slow_orders)


big_world = world_fixture(BOTH_STATES, size=MANY_ORDERS, prepare=_slow_orders)


def _orders_going_out(world: World) -> bool:
    return world.sandbox.store.counts()["orders"] >= 5


def _status(world: World) -> tuple[str, dict[str, object]]:
    text = run_cli(world, "status")
    assert text.returncode == 0, text.stderr
    data = run_cli(world, "status", "--json")
    assert data.returncode == 0, data.stderr
    return text.stdout, json.loads(data.stdout)["last_runs"][0]


def test_a_killed_daemons_cycle_is_shown_interrupted_with_what_it_left(world: World) -> None:
    daemon = DaemonProcess.start(world, **SLOW)
    wait_until(lambda: _orders_going_out(world), 60, "orders to go out")
    daemon.kill()  # SIGKILL: no chance to record anything

    out, last = _status(world)
    assert "still running" not in out
    assert "last cycle: #1 sync interrupted" in out
    assert "ended before the cycle did (killed?)" in out
    assert "not finished: orders" in out
    assert last["status"] == RunStatus.INTERRUPTED
    assert last["owner_gone"] is True
    assert last["unfinished"] == ["orders"]

    # The next cycle takes over: the same run history, now finished by the restarted process.
    world.sandbox.faults.clear()
    assert run_cli(world, "sync").returncode == 0
    out, last = _status(world)
    assert "last cycle: #2 sync ok" in out
    assert last["unfinished"] == []


def test_a_running_cycle_is_shown_running_while_its_process_lives(world: World) -> None:
    daemon = DaemonProcess.start(world, **SLOW)
    try:
        wait_until(lambda: _orders_going_out(world), 60, "orders to go out")
        out, last = _status(world)
        assert last["status"] == RunStatus.RUNNING
        assert last["owner_gone"] is False
        assert f"still running ({daemon.process.pid}@" in out
    finally:
        daemon.kill()


def test_a_daemon_stopped_mid_cycle_shows_the_cycle_interrupted_not_ok(
        big_world: World) -> None:
    world = big_world
    daemon = DaemonProcess.start(world, **BATCHES)
    wait_until(lambda: _orders_going_out(world), 60, "orders to go out")
    assert daemon.stop() == 0  # SIGTERM: finishes the batch in flight, records, exits

    out, last = _status(world)
    assert "sync ok" not in out
    assert "last cycle: #1 sync interrupted" in out
    assert "stopped before its end" in out
    assert "not finished: orders (read in part: " in out
    assert last["status"] == RunStatus.INTERRUPTED
    assert last["owner_gone"] is False
    assert last["unfinished"] == ["orders"]
    sent = world.sandbox.store.counts()["orders"]
    assert 0 < sent < MANY_ORDERS.orders


def test_a_foreground_sync_stopped_by_sigterm_exits_6_and_says_what_is_left(
        big_world: World) -> None:
    world = big_world
    process = subprocess.Popen(command("sync"), cwd=world.tmp, env=cli_env(world, **BATCHES),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _orders_going_out(world), 60, "orders to go out")
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 6
    assert "not finished: orders" in stdout
    out, last = _status(world)
    assert last["status"] == RunStatus.INTERRUPTED
    assert "not finished: orders (read in part: " in out
