"""`cdc-sync run` as a real process: cycles, SIGTERM, resync requests, refusal, health, webhook.

Each test runs the daemon in a subprocess against a SQLite demo shop, the real sandbox (in this
process, so the test can look inside it and inject faults) and a SQLite state DB.
"""

from __future__ import annotations

import json
import re
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.demo import mutate
from cdc_sync.demo.generate import SMALL
from cdc_sync.state import Status
from helpers.daemon import FIRST_CYCLE, World, daemon_world
from helpers.outages import wait_until
from helpers.prom import sample

pytestmark = pytest.mark.timeout(60)

# The shop's last order and customer: a change the daemon sends must come from its change
# detection, not from the rolling reconciliation, whose slices walk the keys from the lowest,
# one a cycle on a shop this small (a 15-minute window of 1-second cycles), and reach these
# only after the test's waits.
LAST_ORDER, LAST_CUSTOMER = SMALL.orders, SMALL.customers


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from daemon_world(tmp_path, f"sqlite:///{tmp_path}/state.sqlite")


@pytest.fixture
def pg_world(tmp_path: Path, pg_url: str) -> Iterator[World]:
    yield from daemon_world(tmp_path, pg_url)


def test_daemon_runs_cycles_on_its_interval_and_exits_0_on_sigterm(world: World) -> None:
    world.seed()
    daemon = world.start()
    daemon.wait_for(FIRST_CYCLE)
    order, customer = str(LAST_ORDER), LAST_CUSTOMER
    new_status = "refunded" if world.held("orders", order)["status"] != "refunded" else "completed"
    mutate.set_order_status(world.shop(), LAST_ORDER, {"refunded": 5, "completed": 3}[new_status])
    mutate.rename_customer(world.shop(), customer, "Renamed")
    wait_until(lambda: world.held("orders", order)["status"] == new_status and
               world.held("customers", _email(world, customer))["firstName"] == "Renamed",
               15, "the changes to reach the sandbox")
    idle = r"sync cycle ok in \S+: nothing to send"
    daemon.wait_for(idle, count=len(re.findall(idle, daemon.log())) + 1)  # and it goes on

    assert daemon.stop() == 0
    assert daemon.log().rstrip().endswith("stopped")
    assert "Traceback" not in daemon.log()
    assert world.synced() == world.sandbox.store.counts()
    with world.state() as state:
        runs = state.last_runs(100)
        assert len(runs) >= 3  # the first sync, the changes, an idle cycle
        assert {run.status for run in runs} == {"ok"}
        assert all(state.count_by_status(r.value)[Status.PENDING] == 0 for r in Resource)


def test_sigterm_mid_cycle_commits_the_acknowledged_batches_and_nothing_else(
        world: World) -> None:
    world.seed()
    world.sandbox.faults.update({"delay_rate": 1.0, "delay": 0.25})
    daemon = world.start(CDC_SYNC_BATCH_SIZE="5", CDC_SYNC_CONCURRENCY="1")
    wait_until(lambda: world.requests("customer/batch") >= 2, 15, "customer batches")
    assert daemon.stop() == 0

    assert "sync cycle stopped early" in daemon.log()
    held = world.sandbox.store.counts()
    assert held["customers"] > 0
    assert held["orders"] == 0
    assert world.synced() == held  # every acknowledged batch committed, nothing more


def test_resync_request_from_another_process_is_picked_up_at_once(world: World) -> None:
    from cdc_sync.daemon import resync_or_hand_over

    world.seed()
    # No tick comes within the test's life: a resync that runs was picked up by the poll.
    daemon = world.start(CDC_SYNC_INTERVAL="3600")
    daemon.wait_for(FIRST_CYCLE)
    before = world.requests("category/batch")

    with resync_or_hand_over(world.state_url, [Resource.CATEGORIES]) as handed:
        assert handed is not None, "a daemon is running: the request must be handed over"
        assert f"pid {daemon.process.pid}" in handed.daemon
    daemon.wait_for(r"resync cycle ok in \S+: categories 6 sent")
    assert len(re.findall(r"\bsync cycle ", daemon.log())) == 1  # no tick came in between
    assert world.requests("category/batch") == before + 1
    assert world.requests("order/batch") == 1  # only what was asked for
    with world.state() as state:
        assert state.last_runs(1)[0].kind == "resync"
        assert state.take_resync_request() is None
    assert daemon.stop() == 0


def test_second_daemon_on_the_same_sqlite_state_refuses_to_start(world: World) -> None:
    world.seed()
    first = world.start()
    first.wait_for(FIRST_CYCLE)

    second = world.start()
    assert second.process.wait(20) == 4
    refusal = second.log()
    assert "another cdc-sync process already holds the state DB" in refusal
    assert f"pid {first.process.pid}" in refusal
    assert "use a PostgreSQL state DB" in refusal
    assert first.process.poll() is None
    assert first.stop() == 0


def test_healthz_and_metrics_follow_the_cycles_and_a_metrilo_outage(world: World) -> None:
    world.seed()
    daemon = world.start("--http-port", "0", CDC_SYNC_HEALTH_STALE_SECONDS="2")
    base = daemon.health_url()
    assert base.startswith("http://127.0.0.1:")
    daemon.wait_for(FIRST_CYCLE)

    health = httpx.get(f"{base}/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["last_success_age_seconds"] >= 0  # a success is recorded
    metrics = httpx.get(f"{base}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert sample(metrics.text, "cdc_sync_records_sent_total", resource="orders") == 120
    assert sample(metrics.text, "cdc_sync_state_records", resource="orders", status="pending") == 0
    assert (sample(metrics.text, "cdc_sync_metrilo_responses_total", code="200") or 0) >= 1
    assert (sample(metrics.text, "cdc_sync_last_success_timestamp_seconds") or 0) > 0
    assert sample(metrics.text, "cdc_sync_active") == 1

    world.sandbox.faults.update({"error_rate": 1.0})
    mutate.rename_customer(world.shop(), LAST_CUSTOMER, "Outage")
    stale = wait_until(lambda: r if (r := httpx.get(f"{base}/healthz")).status_code == 503
                       else None, 15, "/healthz to turn 503")
    assert stale.json()["status"] == "degraded"
    assert "Metrilo" in stale.json()["last_error"]
    failing = httpx.get(f"{base}/metrics").text
    assert sample(failing, "cdc_sync_state_records", resource="customers", status="pending") == 1
    assert sum(sample(failing, "cdc_sync_metrilo_responses_total", code=c) or 0
               for c in ("500", "502")) >= 1
    assert (sample(failing, "cdc_sync_cycles_total", kind="sync", result="failed") or 0) >= 1

    world.sandbox.faults.clear()
    wait_until(lambda: httpx.get(f"{base}/healthz").json()["status"] == "ok", 15, "recovery")
    assert world.held("customers", _email(world, LAST_CUSTOMER))["firstName"] == "Outage"
    assert daemon.stop() == 0
    assert daemon.process.returncode == 0


def _email(world: World, customer_id: int) -> str:
    with world.shop().connect() as conn:
        return str(conn.execute(sa.text("SELECT email FROM customers WHERE id = :i"),
                                {"i": customer_id}).scalar_one())


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook/secret-token", received
    finally:
        server.shutdown()
        server.server_close()


def test_shop_outage_calls_the_webhook_and_the_daemon_carries_on(
        world: World, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = webhook
    daemon = world.start(CDC_SYNC_WEBHOOK_URL=url)  # the shop file does not exist yet

    failed = wait_until(lambda: [m for m in received if m["event"] == "cycle_failed"], 15,
                        "a cycle_failed webhook")[0]
    assert failed["result"] == "failed"
    assert "shop" in failed["text"] or "unable to open" in failed["text"]
    assert daemon.process.poll() is None
    daemon.wait_for(r"sync cycle failed .*next attempt in", count=2)

    world.seed()  # the shop is back
    wait_until(lambda: any(m["event"] == "recovered" for m in received), 15, "recovered")
    assert world.sandbox.store.counts()["orders"] == 120
    assert daemon.stop() == 0
    assert "secret-token" not in daemon.log()


def _metric(url: str, name: str, **labels: str) -> float | None:
    return sample(httpx.get(f"{url}/metrics").text, name, **labels)


def test_two_daemons_on_postgresql_state_one_pushes_and_the_standby_takes_over(
        pg_world: World) -> None:
    world = pg_world
    world.seed()
    first, second = world.start("--http-port", "0"), world.start("--http-port", "0")
    urls = {first: first.health_url(), second: second.health_url()}
    wait_until(lambda: sorted(_metric(u, "cdc_sync_active") or 0 for u in urls.values())
               == [0, 1], 20, "one active daemon and one standby")
    active = next(d for d, u in urls.items() if _metric(u, "cdc_sync_active") == 1)
    standby = second if active is first else first
    active.wait_for(FIRST_CYCLE)
    active.wait_for(r"nothing to send", count=3)

    assert httpx.get(f"{urls[standby]}/healthz").json()["status"] == "standby"
    assert httpx.get(f"{urls[standby]}/healthz").status_code == 200
    assert f"pid {active.process.pid}" in standby.wait_for(r"standby: .* holds the lease").group(0)
    assert "cycle" not in standby.log()
    assert _metric(urls[standby], "cdc_sync_metrilo_responses_total", code="200") is None
    assert world.requests("order/batch") == 1  # one first sync, by one daemon
    with world.state() as state:
        runs = state.last_runs(100)
    assert all(a.finished_at is not None and a.finished_at <= b.started_at
               for a, b in zip(reversed(runs[1:]), reversed(runs[:-1]), strict=True))

    active.process.kill()
    standby.wait_for(r"active: this daemon holds the lease")
    mutate.rename_customer(world.shop(), LAST_CUSTOMER, "FailedOver")
    wait_until(lambda: world.held("customers", _email(world, LAST_CUSTOMER)).get("firstName")
               == "FailedOver", 15, "the new active daemon to push the change")
    assert standby.stop() == 0


def test_a_second_sigterm_stops_at_once_with_128_plus_the_signal(world: World) -> None:
    world.seed()
    world.sandbox.faults.update({"delay_rate": 1.0, "delay": 1.0})
    daemon = world.start(CDC_SYNC_BATCH_SIZE="5", CDC_SYNC_CONCURRENCY="1")
    wait_until(lambda: world.requests("customer/batch") >= 1, 15, "a first slow batch")
    daemon.process.send_signal(signal.SIGTERM)
    daemon.wait_for(r"stop requested")
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(10) == 128 + signal.SIGTERM
    assert "second stop signal: exiting now" in daemon.log()
    # It did not wait for the batches still to send (a first SIGTERM would have).
    assert world.requests("customer/batch") < SMALL.customers // 5


def test_per_resource_intervals_run_each_resource_on_its_own_clock(world: World) -> None:
    world.seed()
    daemon = world.start("--log-json", CDC_SYNC_INTERVAL="60", CDC_SYNC_INTERVALS="orders=1")
    daemon.wait_for(r'"sent": 120')
    order = str(LAST_ORDER)
    new_status = "refunded" if world.held("orders", order)["status"] != "refunded" else "completed"
    mutate.set_order_status(world.shop(), LAST_ORDER, {"refunded": 5, "completed": 3}[new_status])
    mutate.rename_customer(world.shop(), 5, "NotYet")
    wait_until(lambda: world.held("orders", order)["status"] == new_status, 10, "the order")
    cycles_so_far = daemon.log().count('"event": "cycle"')
    daemon.wait_for(r'"event": "cycle"', count=cycles_so_far + 2)  # two more orders turns
    assert world.held("customers", _email(world, 5))["firstName"] != "NotYet"  # its turn: 60 s
    assert daemon.stop() == 0

    cycles = [json.loads(line) for line in daemon.log().splitlines() if '"cycle"' in line]
    assert all(entry["level"] in ("info", "error") for entry in cycles)
    later = [set(entry["counts"]) for entry in cycles[1:] if entry["result"] == "ok"]
    assert later
    assert all(names <= {"guest_customers", "deleted_products", "orders"} for names in later)


def test_state_db_connections_dropping_fail_one_cycle_then_the_daemon_carries_on(
        pg_world: World) -> None:
    world = pg_world
    world.seed()
    daemon = world.start()
    daemon.wait_for(FIRST_CYCLE)
    database = sa.make_url(world.state_url).database
    admin = sa.create_engine(world.state_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # what a restart of the state DB's server does to sessions
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": database})
    admin.dispose()
    daemon.wait_for(r"lost the lease")
    daemon.wait_for(r"active: this daemon holds the lease", count=2)
    mutate.rename_customer(world.shop(), LAST_CUSTOMER, "AfterRestart")
    wait_until(lambda: world.held("customers", _email(world, LAST_CUSTOMER)).get("firstName")
               == "AfterRestart", 15, "the change after the reconnection")
    assert daemon.stop() == 0
