"""Guest customers on incremental cycles: derived from the changed orders and state alone,
exact for the common cases within one cycle, the rare ones settled by the guests' full read
once per reconciliation window (cycle/guests.py, core/guests.py). Real shops on every dialect.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from cdc_sync.cli import cli
from cdc_sync.core.guests import Basis, Verdict, decide
from cdc_sync.core.report import ReadMode, ResourceReport
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.demo import mutate, schema
from cdc_sync.state.engine import create_state_engine
from cdc_sync.state.tables import sync_state
from helpers.backends import COMBINATIONS
from helpers.world import World, demo_world
from helpers.worlds import world_fixture

GUESTS = Resource.GUEST_CUSTOMERS
HOUR_LATER = 3700.0  # past sync.full_reconcile_minutes: the guests' full read is due
EMAIL = "walk.in@example.org"


world = world_fixture(COMBINATIONS)


def _now() -> datetime:
    return datetime.now().replace(microsecond=0)


def _stamp(world: World, table: sa.Table) -> datetime:
    """A cursor value past every row's (the demo data may lie in the machine's future)."""
    with world.shop.connect() as conn:
        latest = conn.execute(sa.select(sa.func.max(table.c.updated_at))).scalar()
    return max(_now(), latest + timedelta(seconds=1)) if latest is not None else _now()


def _order(world: World, email: str, *, created: datetime, first: str) -> int:
    order_id = mutate.add_order(world.shop, email=email, lines=[(1, 1)], created_at=created)
    world.write(schema.orders, order_id, billing_first_name=first,
                updated_at=_stamp(world, schema.orders))
    return order_id


def _customer(world: World, customer_id: int, email: str, created: datetime) -> None:
    with world.shop.begin() as conn:
        conn.execute(schema.customers.insert(), [{
            "id": customer_id, "email": email, "first_name": "Reg", "last_name": "Istered",
            "newsletter": "N", "created_at": created,
            "updated_at": _stamp(world, schema.customers),
        }])


def _bump(world: World, order_id: int, **values: object) -> None:
    """An edit the shop stamps (its cursor past every other)."""
    world.write(schema.orders, order_id, updated_at=_stamp(world, schema.orders), **values)


def _guests(world: World, **engine_options: Any) -> ResourceReport:
    report = world.sync(**engine_options)
    guests = report.resources[GUESTS]
    assert guests.error is None, guests.error
    return guests


def _customer_email(world: World) -> str:
    with world.shop.connect() as conn:
        return str(conn.execute(sa.select(schema.customers.c.email)
                                .order_by(schema.customers.c.id).limit(1)).scalar_one())


def test_the_common_cases_are_exact_within_one_incremental_cycle(world: World) -> None:
    world.sync()
    start = _now() - timedelta(days=30)

    # A new guest's first order.
    first = _order(world, EMAIL, created=start, first="Ann")
    guests = _guests(world)
    assert guests.mode == "incremental"
    assert (guests.counts.new, guests.counts.sent) == (1, 1)
    assert world.held("customers", EMAIL)["firstName"] == "Ann"
    assert world.differences() == []

    # A later order by that guest: the guest stays as its first order made it.
    later = _order(world, EMAIL.upper(), created=start + timedelta(days=1), first="Later")
    guests = _guests(world)
    assert guests.counts.sent == 0
    assert world.differences() == []

    # The first order itself edited (its name fields): the guest follows it.
    _bump(world, first, billing_first_name="Anna")
    guests = _guests(world)
    assert (guests.counts.changed, guests.counts.sent) == (1, 1)
    assert world.held("customers", EMAIL)["firstName"] == "Anna"
    assert world.differences() == []

    # The later order edited: not the first, nothing to send.
    _bump(world, later, billing_first_name="Still later")
    assert _guests(world).counts.sent == 0

    # An earlier order added: it is the first order now (createdAt and name).
    _order(world, f"  {EMAIL}", created=start - timedelta(days=1), first="Earlier")
    guests = _guests(world)
    assert guests.counts.sent == 1
    assert world.held("customers", EMAIL)["firstName"] == "Earlier"
    assert world.differences() == []

    # An order whose email a registered customer has (in another case): no guest.
    taken = _customer_email(world)
    _order(world, f" {taken.upper()} ", created=start - timedelta(days=9), first="Nobody")
    guests = _guests(world)
    assert guests.counts.sent == 0
    assert world.rows(GUESTS, [taken.lower()]) == {}
    assert world.differences() == []


def test_a_guest_and_the_customer_who_registers_with_its_email_in_the_same_cycle(
    world: World,
) -> None:
    world.sync()
    # The customer is synced before the guests in the same cycle: the order makes no guest.
    _customer(world, 9001, "signed.up@example.org", _now())
    _order(world, "Signed.Up@example.org", created=_now(), first="Sig")
    guests = _guests(world)
    assert guests.counts.scanned == 0
    assert world.differences() == []


def test_a_dry_run_counts_no_guest_for_a_customer_it_has_not_sent(world: World) -> None:
    world.sync()
    _customer(world, 9003, "dry.run@example.org", _now())
    _order(world, "Dry.Run@example.org", created=_now(), first="Dry")
    _order(world, EMAIL, created=_now(), first="Walk")
    # The dry run sends no customer, so state does not know this one: the query is asked.
    dry = world.sync(CycleOptions(dry_run=True)).resources[GUESTS]
    assert dry.mode is ReadMode.INCREMENTAL_DRY_RUN
    assert (dry.counts.scanned, dry.counts.new) == (1, 1)  # the walk-in only


def test_what_state_cannot_decide_is_read_exactly(world: World) -> None:
    world.sync()
    start = _now() - timedelta(days=30)
    first = _order(world, EMAIL, created=start, first="Ann")
    world.sync()
    # A guest synced by an older cdc-sync keeps no first order: its email is derived by the
    # exact query, so a later order leaves it as it is.
    state = create_state_engine(world.state_url)
    with state.begin() as conn:
        conn.execute(sync_state.update().where(sync_state.c.resource == GUESTS.value)
                     .values(payload=None))
    state.dispose()
    _order(world, EMAIL, created=start + timedelta(days=1), first="Later")
    assert _guests(world).counts.sent == 0
    assert world.differences() == []
    # ...and keeps it again from then on.
    assert world.state().payloads(GUESTS.value, [EMAIL])
    # A second order in the same millisecond as the first: the query breaks the tie.
    _order(world, EMAIL, created=start, first="Twin")
    _guests(world)
    assert world.held("customers", EMAIL)["firstName"] == "Ann"
    # The first order's date moved later, past the other orders: the query finds the next.
    _bump(world, first, created_at=start + timedelta(days=5))
    _guests(world)
    assert world.held("customers", EMAIL)["firstName"] == "Twin"
    assert world.differences() == []


def test_the_rare_cases_are_settled_by_the_guests_full_read_within_the_window(
    world: World,
) -> None:
    world.sync()
    start = _now() - timedelta(days=30)
    # An email that belonged to a customer since deleted: its older orders made no guest.
    _customer(world, 9002, "left@example.org", start)
    old = _order(world, "left@example.org", created=start, first="Old")
    world.write(schema.orders, old, updated_at=datetime(2001, 1, 1))  # long before the mark
    world.sync()
    mutate.delete_customer(world.shop, 9002)
    world.sync(CycleOptions(full=True, resources=(Resource.CUSTOMERS,)))  # state: it is gone
    _order(world, "left@example.org", created=start + timedelta(days=2), first="New")
    # The first order of a guest deleted.
    gone_first = _order(world, EMAIL, created=start, first="Ann")
    _order(world, EMAIL, created=start + timedelta(days=3), first="Next")
    incremental = _guests(world)
    assert incremental.mode == "incremental"
    # Decided from the changed orders alone: the older order of the email is not seen.
    assert world.held("customers", "left@example.org")["firstName"] == "New"
    mutate.delete_order(world.shop, gone_first)
    _guests(world)  # the incremental cycle does not see the deleted first order either
    assert world.held("customers", EMAIL)["firstName"] == "Ann"

    full = _guests(world, clock=lambda: time.time() + HOUR_LATER)
    assert full.mode == "full"
    assert world.held("customers", EMAIL)["firstName"] == "Next"
    assert world.held("customers", "left@example.org")["firstName"] == "Old"
    # Metrilo keeps the deleted order (on_delete: gone records it as gone in state only).
    assert world.differences(extra_ok={"orders": {str(gone_first)}}) == []


def _b(created: int | None, order: str) -> Basis:
    return Basis(created, order)


@pytest.mark.parametrize(("changed", "kept", "verdict"), [
    pytest.param([_b(5, "9")], None, Verdict.EXACT, id="nothing kept"),
    pytest.param([_b(None, "9")], _b(1, "1"), Verdict.EXACT, id="no date"),
    pytest.param([_b(5, "9")], _b(1, "1"), Verdict.SKIP, id="later order"),
    pytest.param([_b(0, "9")], _b(1, "1"), Verdict.SEND, id="earlier order"),
    pytest.param([_b(1, "9")], _b(1, "1"), Verdict.EXACT, id="same ms"),
    pytest.param([_b(1, "1"), _b(3, "9")], _b(1, "1"), Verdict.SEND, id="first order edited"),
    pytest.param([_b(0, "9"), _b(1, "1")], _b(1, "1"), Verdict.SEND,
                 id="first order edited, an earlier one added"),
    pytest.param([_b(2, "1")], _b(1, "1"), Verdict.EXACT, id="first order moved later"),
    pytest.param([_b(0, "1")], _b(1, "1"), Verdict.SEND, id="first order moved earlier"),
])
def test_decide_per_email(changed: list[Basis], kept: Basis | None, verdict: Verdict) -> None:
    assert decide(changed, kept) is verdict


def test_a_basis_reads_back_and_other_payloads_do_not() -> None:
    basis = Basis(1700000000000, "42")
    assert Basis.parse(basis.text()) == basis
    for text in (None, "", "not json", '{"email": "a@b.c", "createdAt": 1}', "[1]",
                 '{"createdAt": "x", "order": "1"}'):
        assert Basis.parse(text) is None


def test_check_and_status_say_what_waits_for_the_guests_full_read(
    tmp_path: Path, sqlite_url: str
) -> None:
    with demo_world(tmp_path, sqlite_url, f"sqlite:///{tmp_path}/state.sqlite") as world:
        mappings = ["--mappings", str(world.mapping.path)]
        checked = CliRunner().invoke(cli, ["check", "--source-url", sqlite_url, *mappings])
        assert checked.exit_code == 0, checked.output
        guests = checked.output.split("  guest_customers\n")[1].split("\n  categories")[0]
        assert re.search(r"orders +orders\.table +cursor updated_at +next cycle", guests)
        flat = " ".join(guests.split())
        assert ("the rest within 15 min, by the full read once per window (derived from every "
                "order; skipped while the checksum of the orders and customers it reads is "
                "unchanged, on PostgreSQL and MariaDB/MySQL): a guest's first order deleted"
                ) in flat, guests
        world.sync()
        shown = CliRunner().invoke(cli, ["status", "--json", "--source-url", sqlite_url,
                                         "--state-url", world.state_url, *mappings])
        assert shown.exit_code == 0, shown.output
        detection = json.loads(shown.output)["change_detection"]["resources"]
        orders, customers = detection["guest_customers"]
        assert orders["delay"] == "next cycle"
        assert orders["later"].startswith("within 15 min, by the full read once per window")
        assert "older orders of an email whose customer was deleted" in orders["later"]
        assert customers["later"] is None
        assert all(d["later"] is None for d in detection["orders"])
