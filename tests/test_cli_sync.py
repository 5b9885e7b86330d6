"""`cdc-sync sync / resync / retry / status / rejected` as processes, as a user runs them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner

from cdc_sync.cli import cli
from cdc_sync.core.resources import Resource
from cdc_sync.demo import mutate, schema
from cdc_sync.state import Status
from helpers.cli import run_cli
from helpers.world import SECRET, World
from helpers.worlds import world_fixture

world = world_fixture()


def _customer_with_orders(world: World) -> int:
    with world.shop.connect() as conn:
        return int(conn.execute(sa.select(sa.func.min(schema.orders.c.customer_id))).scalar_one())


def test_sync_dry_run_prints_samples_and_writes_and_sends_nothing(world: World) -> None:
    result = run_cli(world, "sync", "--dry-run", METRILO_API_TOKEN="", METRILO_API_SECRET="")
    assert result.returncode == 0, result.stderr
    assert "sync (dry run: nothing written or sent)" in result.stdout
    assert "sample orders new" in result.stdout
    assert sum(world.sandbox.store.counts().values()) == 0
    state = world.state()
    assert state.last_runs() == []
    assert all(not any(state.count_by_status(r.value).values()) for r in Resource)


def test_status_and_rejected_do_not_create_a_missing_sqlite_state(tmp_path: Path) -> None:
    # Run in the wrong directory, they made an empty state DB there and said "nothing synced
    # yet" while the syncs' state sat elsewhere.
    missing = tmp_path / "cdc-sync-state.sqlite"
    for args in (["status"], ["status", "--json"], ["rejected", "orders"]):
        result = CliRunner().invoke(cli, [*args, "--state-url", f"sqlite:///{missing}"])
        assert result.exit_code == 1, result.output
        assert f"no state DB at {missing}" in str(result.exception)
        assert "fix: " in str(result.exception)
        assert not missing.exists()


def test_status_before_any_sync_says_so_without_an_empty_table(world: World) -> None:
    world.state()  # the state DB exists (as after `db upgrade`), nothing synced yet
    status = run_cli(world, "status")
    assert status.returncode == 0, status.stderr
    assert "nothing synced yet: run `cdc-sync sync`" in status.stdout
    assert "synced   pending" not in status.stdout


def test_naming_a_resource_the_mapping_does_not_produce_is_an_error(world: World) -> None:
    # A silent empty cycle (exit 0) would read as "done"; preview already refuses it.
    world.edit_mapping(lambda data: data.update(guest_customers={"enabled": False}))
    for command in ("sync", "retry", "resync"):
        result = run_cli(world, command, "guest_customers")
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "guest_customers is not mapped (or is disabled)" in result.stderr
        assert "fix: " in result.stderr
    assert sum(world.sandbox.store.counts().values()) == 0


def test_status_and_rejected_say_what_a_user_needs(world: World) -> None:
    customer_id = _customer_with_orders(world)
    mutate.rename_customer(world.shop, customer_id, "Bad\x01Name")
    synced = run_cli(world, "sync")
    assert synced.returncode == 5, synced.stderr  # done, but records were rejected

    status = run_cli(world, "status")
    assert status.returncode == 0, status.stderr
    out = status.stdout
    assert "synced   pending  rejected      gone" in out
    assert "rejected 1x: firstName: contains the control character U+0001" in out
    assert "x: waiting for customer" in out
    assert "last cycle: #1 sync rejected" in out
    assert "records rejected in this cycle" in out
    assert "  orders: 200 scanned, 200 new, " in out
    assert "last error: none" in out

    data = json.loads(run_cli(world, "status", "--json").stdout)
    assert data["resources"]["customers"]["counts"]["rejected"] == 1
    assert data["resources"]["orders"]["top_pending"][0]["reason"].startswith(
        "waiting for customer")
    assert data["last_runs"][0]["counts"]["orders"]["waiting"] >= 1
    assert data["last_runs"][0]["status"] == "rejected"

    assert run_cli(world, "sync").returncode == 0  # reads the window's first slice
    out = run_cli(world, "status").stdout
    assert re.search(r"orders: reconciliation: slice 1/1[45], \d+% of keys read, window "
                     r"started \d\d:\d\d UTC, full coverage by \d\d:\d\d UTC", out), out
    window = json.loads(run_cli(world, "status", "--json").stdout)["reconciliation"]["orders"]
    assert window["slice"] == 1
    assert 0 < window["keys_read"] < window["keys_total"]

    rejected = run_cli(world, "rejected", "customers")
    assert rejected.returncode == 0
    key, email, reason = rejected.stdout.splitlines()[0].split("\t")
    assert key == str(customer_id)
    assert "@" in email
    assert "control character" in reason
    assert "cdc-sync retry customers" in rejected.stderr


def test_rejected_refuses_a_limit_below_one(tmp_path: Path) -> None:
    # --limit 0 said "no rejected customers" whatever state held; -1 failed on PostgreSQL.
    for limit in ("0", "-1"):
        result = CliRunner().invoke(cli, ["rejected", "customers", "--limit", limit,
                                          "--state-url", f"sqlite:///{tmp_path}/s.sqlite"])
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--limit'" in result.output
        assert "no rejected" not in result.output


def test_rejections_below_the_threshold_leave_the_cycle_ok(world: World) -> None:
    mutate.rename_customer(world.shop, _customer_with_orders(world), "Bad\x01Name")
    synced = run_cli(world, "sync", CDC_SYNC_REJECTION_THRESHOLD="2")
    assert synced.returncode == 0, synced.stderr
    assert "last cycle: #1 sync ok" in run_cli(world, "status").stdout
    again = run_cli(world, "retry", "customers", CDC_SYNC_REJECTION_THRESHOLD="1")
    assert again.returncode == 5, again.stderr
    off = run_cli(world, "retry", "customers", CDC_SYNC_REJECTION_THRESHOLD="0")
    assert off.returncode == 0, off.stderr


def test_retry_sends_rejected_records_again(world: World) -> None:
    customer_id = _customer_with_orders(world)
    mutate.rename_customer(world.shop, customer_id, "Bad\x01Name")
    run_cli(world, "sync")
    before = world.rows(Resource.CUSTOMERS, [str(customer_id)])[str(customer_id)]
    retried = run_cli(world, "retry", "customers")
    assert retried.returncode == 5, retried.stderr  # rejected again
    after = world.rows(Resource.CUSTOMERS, [str(customer_id)])[str(customer_id)]
    assert after.status is Status.REJECTED  # still invalid: tried again, refused again
    assert after.attempts == 1
    assert before.attempts == 1
    assert "retry" in run_cli(world, "status").stdout


def test_a_401_exits_with_code_3_and_names_what_to_check(world: World) -> None:
    result = run_cli(world, "sync", METRILO_API_TOKEN="not-the-token")
    assert result.returncode == 3
    assert "Metrilo answered 401" in result.stderr
    assert "check METRILO_API_TOKEN and METRILO_API_SECRET" in result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert "not-the-token" not in result.stderr + result.stdout


def test_resync_dry_run_counts_everything_and_forces_nothing(world: World) -> None:
    run_cli(world, "sync")
    result = run_cli(world, "resync", "--dry-run", "orders")
    assert result.returncode == 0, result.stderr
    line = next(ln for ln in result.stdout.splitlines() if ln.strip().startswith("orders"))
    assert line.split()[1:3] == ["full", "dry-run"]
    assert "200" in line.split()
    assert world.state().forced_count("orders") == 0


def test_a_held_mapping_change_is_reported_and_released_by_accept_mapping(world: World) -> None:
    def hold_small(mapping: dict[str, Any]) -> None:
        mapping["sync"] = {"hold_changes_over": 5}

    world.edit_mapping(hold_small)
    run_cli(world, "sync")

    def new_urls(mapping: dict[str, Any]) -> None:
        mapping["categories"]["fields"]["url"]["template"] = "https://x.example/{slug}"
        mapping["products"]["fields"]["url"]["template"] = "https://x.example/p/{slug}"

    world.edit_mapping(new_urls)
    held = run_cli(world, "sync")
    assert held.returncode == 0, held.stderr
    assert "held until `cdc-sync resync products --confirm`" in held.stdout
    assert "sample products changed" in held.stdout
    assert "held: the products mapping changed (30 records would be resent)" in run_cli(
        world, "status").stdout
    assert world.held("categories", "1")["url"].startswith("https://x.example/")  # 5: sent

    released = run_cli(world, "sync", "--accept-mapping")
    assert released.returncode == 0, released.stderr
    assert world.held("products", "1")["url"].startswith("https://x.example/p/")
    assert "held:" not in run_cli(world, "status").stdout
