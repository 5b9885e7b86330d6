"""At-least-once delivery: killed processes and a misbehaving Metrilo lose nothing.

`cdc-sync sync` runs as a real process against the real sandbox and is SIGKILLed at random
points while it sends thousands of records; after every kill, state may claim "synced" only
for what the sandbox holds; after a final clean run the sandbox equals the source. A second
test keeps the sandbox failing 30% of requests, dropping connections and answering too late
for a short client timeout, and repeats cycles until they converge on the same end state.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from typing import Any

from cdc_sync.core.diff import fingerprint
from cdc_sync.core.resources import Resource
from cdc_sync.demo import mutate
from cdc_sync.metrilo.retry import RetryPolicy
from cdc_sync.state import Status
from helpers.backends import COMBINATIONS, FEW_COMBINATIONS
from helpers.cli import cli_env, command, run_cli
from helpers.world import ShopSize, World
from helpers.worlds import world_fixture

THOUSANDS = ShopSize(customers=300, categories=6, products=60, orders=1500)
KILLS = 3


def _always_full(mapping: dict[str, Any]) -> None:
    mapping["sync"] = {"full_reconcile_minutes": 0}


# Each process takes a second or two to start: two combinations cover both state backends
# and the two server shops; the fault test below runs on all three.
world = world_fixture(FEW_COMBINATIONS, size=THOUSANDS)


# Every cycle reads fully, so deletes and derived records are settled every cycle.
full_world = world_fixture(COMBINATIONS, edit=_always_full)


def _held(world: World) -> int:
    return sum(world.sandbox.store.counts().values())


def _kill_when(world: World, process: subprocess.Popen[str], held_at_least: int,
               timeout: float = 60) -> bool:
    """SIGKILL `process` once the sandbox holds `held_at_least` records; False if it ended."""
    deadline = time.monotonic() + timeout
    while _held(world) < held_at_least:
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the sync made no progress")
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return True


def _assert_state_claims_only_what_metrilo_holds(world: World) -> None:
    state = world.state()
    for resource in Resource:
        sandbox_name = "customers" if resource in (
            Resource.CUSTOMERS, Resource.GUEST_CUSTOMERS) else (
            "products" if resource in (Resource.PRODUCTS, Resource.DELETED_PRODUCTS)
            else resource.value)
        held = world.sandbox.store.records(sandbox_name)
        for keys in state.iter_live_keys(resource.value):
            for row in state.lookup(resource.value, keys).values():
                if row.status is not Status.SYNCED:
                    continue
                assert row.metrilo_id in held, f"{resource} {row.key} synced but never sent"
                if resource in (Resource.ORDERS, Resource.CATEGORIES):
                    record = held[str(row.metrilo_id)]
                    assert fingerprint(record) == row.synced_fingerprint, (
                        f"{resource} {row.key}: state claims a version Metrilo does not hold")


def test_sync_killed_at_random_points_then_restarted_delivers_everything(world: World) -> None:
    rng = random.Random(20250101)
    env = cli_env(world, CDC_SYNC_BATCH_SIZE="25", CDC_SYNC_CONCURRENCY="2")
    world.sandbox.faults.update({"delay_rate": 1.0, "delay": 0.004})  # a realistic pace
    total = sum(len(records) for records in world.expected().values())
    kills = 0
    for attempt in range(KILLS):
        held = _held(world)
        target = held + max(1, int((total - held) * rng.uniform(0.1, 0.6)))
        process = subprocess.Popen(command("sync"), cwd=world.tmp, env=env, text=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if _kill_when(world, process, target):
            kills += 1
        _assert_state_claims_only_what_metrilo_holds(world)
        assert attempt == 0 or _held(world) > 0
    assert kills >= KILLS - 1, "the syncs ended before they could be killed"
    assert _held(world) < total

    world.sandbox.faults.clear()
    finished = run_cli(world, "sync", CDC_SYNC_BATCH_SIZE="25")
    assert finished.returncode == 0, finished.stderr
    assert world.differences() == []
    assert world.sandbox.store.dropped_count() == 0
    _assert_state_claims_only_what_metrilo_holds(world)

    sent = sum(world.sandbox.store.stats()["items_accepted"].values())
    assert world.sync().ok
    assert sum(world.sandbox.store.stats()["items_accepted"].values()) == sent


def test_cycles_converge_while_metrilo_fails_drops_and_answers_too_late(
    full_world: World,
) -> None:
    world = full_world
    world.sandbox.faults.update({
        "error_rate": 0.3, "drop_rate": 0.05, "delay_rate": 0.05, "delay": 0.4, "seed": 3,
    })
    # Two attempts per request: a batch often runs out of them, so cycles really stop halfway.
    policy = RetryPolicy(max_attempts=2, base_delay=0.005, max_delay=0.02, max_elapsed=5)

    def cycles_until_clean(limit: int = 25) -> int:
        for cycle in range(1, limit + 1):
            with world.client(timeout=0.15, max_items=10, concurrency=2, retry=policy) as client:
                report = world.sync(client=client)
            state = world.state()
            pending = sum(state.count_by_status(r.value)[Status.PENDING] for r in Resource)
            if report.ok and pending == 0:
                return cycle
        raise AssertionError(f"no clean cycle in {limit}: {report.errors()}")

    first = cycles_until_clean()
    assert first > 1, "the faults never stopped a cycle: the test proves nothing"
    answers = {status for by_status in world.sandbox.store.stats()["requests"].values()
               for status in by_status}
    assert {"dropped", "200"} <= answers
    assert answers & {"500", "502"}
    assert world.differences() == []

    mutate.set_order_status(world.shop, 10, 4)
    mutate.delete_product(world.shop, 7)
    mutate.add_order(world.shop, email="late.guest@example.org", lines=[(8, 2)])
    cycles_until_clean()
    assert world.differences() == []
    assert world.sandbox.store.dropped_count() == 0
    assert world.held("orders", "10")["status"] == "cancelled"
