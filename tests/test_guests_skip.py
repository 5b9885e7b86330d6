"""The guests' full read skipped while the checksum of what they are derived from (orders,
customers) is unchanged and state's guests are settled (cycle/inputs.py); derived as before on
any change. The derivation is observed from the outside: the statements the shop receives."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_sync.core.report import CycleReport, ResourceReport, RunStatus
from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.cycle.reconcile import progress
from cdc_sync.demo import mutate, schema
from cdc_sync.source import ShopSource, connect_shop
from cdc_sync.source.derived import GUEST_KEY
from helpers.backends import COMBINATIONS
from helpers.statements import Statements
from helpers.world import World
from helpers.worlds import world_fixture

GUESTS = Resource.GUEST_CUSTOMERS
FULL = CycleOptions(full=True)
EMAIL = "walk.in@example.org"


world = world_fixture(COMBINATIONS)


def _derivations(seen: Statements) -> int:
    """How many statements the shops received that derive guests (select the guest key)."""
    return len(seen.matching(lambda sql: GUEST_KEY in sql and "cdc_guests" in sql))


@pytest.fixture
def derivations() -> Iterator[Statements]:
    with Statements(sa.Engine) as seen:  # every engine: a cycle makes its own
        yield seen


def _digesting(world: World) -> bool:
    return not world.shop_url.startswith("sqlite")


def _full(world: World, derivations: Statements, **options: Any) -> tuple[ResourceReport, int]:
    """A full cycle: the guests' report and how many derivation statements it sent."""
    before = _derivations(derivations)
    report: CycleReport = world.sync(CycleOptions(full=True, **options))
    guests = report.resources[GUESTS]
    assert guests.error is None, guests.error
    return guests, _derivations(derivations) - before


def _settled(world: World, derivations: Statements) -> None:
    """A first push, then full cycles until one records its inputs (the second, normally)."""
    world.sync()
    _full(world, derivations)
    assert world.differences() == []


def _a_guest_order(world: World) -> tuple[int, str]:
    """The first order of some guest (an email no customer has): its id and email."""
    with world.shop.connect() as conn:
        customers = {str(e).strip().lower() for (e,) in conn.execute(
            sa.select(schema.customers.c.email)) if e is not None}
        orders = conn.execute(sa.select(schema.orders.c.id, schema.orders.c.email)
                              .order_by(schema.orders.c.created_at, schema.orders.c.id)).all()
    for order_id, email in orders:
        if email and email.strip() and email.strip().lower() not in customers:
            return int(order_id), str(email)
    raise AssertionError("the demo shop has no guest")


def test_a_no_change_full_cycle_does_not_derive_guests_again(
    world: World, derivations: Statements
) -> None:
    _settled(world, derivations)
    live = world.state().live_count(GUESTS.value)
    assert live > 0
    guests, derived = _full(world, derivations)
    if not _digesting(world):  # SQLite computes no checksum: derived every time, as before
        assert derived > 0
        return
    assert derived == 0
    assert (guests.counts.scanned, guests.counts.unchanged, guests.counts.sent) == (live, live, 0)
    assert guests.counts.gone == 0
    assert world.sync(FULL).status is RunStatus.OK
    window = progress(world.state())[GUESTS.value]
    assert window["skipped"]
    assert window["complete"]
    assert "checksum of the orders and customers it reads was unchanged" in window["summary"]
    assert world.differences() == []
    # A dry run skips too; a resync never does.
    assert _full(world, derivations, dry_run=True)[1] == 0
    with world.engine() as engine:
        engine.state.force([GUESTS.value])  # as `resync` starts
    forced, derived = _full(world, derivations)
    assert derived > 0
    assert forced.counts.sent == live


def test_digests_off_derive_every_time(world: World, derivations: Statements) -> None:
    _settled(world, derivations)
    shop = connect_shop(world.shop_url)
    try:  # as CDC_SYNC_SOURCE_DIGESTS=off builds the source
        source = ShopSource(shop, world.mapping, digests=False)
        with world.engine(source=source) as engine:
            before = _derivations(derivations)
            assert engine.run(FULL).resources[GUESTS].error is None
            assert _derivations(derivations) > before
    finally:
        shop.dispose()


def _changes(world: World, order_id: int, email: str) -> list[tuple[str, Any]]:
    start = datetime(2020, 1, 1)

    def email_edited() -> None:
        world.write(schema.orders, order_id, email=f"edited.{email}")

    def name_edited() -> None:
        world.write(schema.orders, order_id, billing_first_name="Renamed")

    def new_order() -> None:
        mutate.add_order(world.shop, email=EMAIL, lines=[(1, 1)], created_at=start)

    def customer_added() -> None:
        with world.shop.begin() as conn:
            conn.execute(schema.customers.insert(), [{
                "id": 99_001, "email": email.upper(), "first_name": "Reg", "last_name": "Istered",
                "newsletter": "N", "created_at": start, "updated_at": start}])

    def customer_deleted() -> None:
        with world.shop.begin() as conn:
            conn.execute(schema.customers.delete().where(schema.customers.c.id == 99_001))

    def order_deleted() -> None:
        with world.shop.begin() as conn:
            conn.execute(schema.order_lines.delete().where(
                schema.order_lines.c.order_id == order_id))
            conn.execute(schema.orders.delete().where(schema.orders.c.id == order_id))

    return [("email edited", email_edited), ("name edited", name_edited),
            ("new order, new email", new_order), ("customer with a guest's email", customer_added),
            ("that customer deleted", customer_deleted), ("order deleted", order_deleted)]


def test_each_change_of_an_input_derives_again_and_syncs_it(
    world: World, derivations: Statements
) -> None:
    _settled(world, derivations)
    order_id, email = _a_guest_order(world)
    for what, change in _changes(world, order_id, email):
        change()
        guests, derived = _full(world, derivations)
        assert derived > 0, what
        assert guests.counts.sent + guests.counts.gone > 0, what
        # Metrilo deletes neither customers nor orders: the deleted order's guest stays there.
        gone = {"customers": {f"edited.{email}".lower()}, "orders": {str(order_id)}}
        assert world.differences(extra_ok=gone if what == "order deleted" else None) == [], what
        # Settled again: the next full cycle skips (where the shop computes checksums).
        assert (_full(world, derivations)[1] == 0) is _digesting(world), what


def test_a_rejected_guest_skips_until_retried_or_fixed(world: World,
                                                       derivations: Statements) -> None:
    # A rejected guest waits for its order to change or for `cdc-sync retry` (a full read
    # leaves it rejected): one invalid email must not cost every cycle the derivation.
    mutate.add_order(world.shop, email="no-at-sign", lines=[(1, 1)],
                     created_at=datetime(2020, 1, 1))
    world.sync()
    assert world.rows(GUESTS, ["no-at-sign"])["no-at-sign"].status.value == "rejected"
    _full(world, derivations)
    assert (_full(world, derivations)[1] == 0) is _digesting(world)
    assert world.state().retry_rejected(GUESTS.value) == 1  # what `cdc-sync retry` does
    guests, derived = _full(world, derivations)
    assert derived > 0  # pending again: derived, sent, rejected again
    assert guests.counts.rejected == 1
    assert world.rows(GUESTS, ["no-at-sign"])["no-at-sign"].status.value == "rejected"
    assert (_full(world, derivations)[1] == 0) is _digesting(world)
    with world.shop.begin() as conn:  # fixed in the shop: derived, sent, then settled
        conn.execute(schema.orders.update().where(schema.orders.c.email == "no-at-sign")
                     .values(email="now@fixed.example"))
    assert _full(world, derivations)[1] > 0
    assert world.differences() == []
    assert (_full(world, derivations)[1] == 0) is _digesting(world)


def test_a_mapping_change_of_the_guest_fields_derives_again(
    world: World, derivations: Statements
) -> None:
    _settled(world, derivations)
    world.edit_mapping(lambda data: data["guest_customers"]["fields"].pop("lastName"))
    guests, derived = _full(world, derivations, accept_mapping=True)
    assert derived > 0
    assert guests.counts.sent > 0
    assert world.differences() == []
    assert (_full(world, derivations)[1] == 0) is _digesting(world)


def test_a_guest_sent_by_an_incremental_cycle_since_is_derived_again(
    world: World, derivations: Statements
) -> None:
    """An incremental cycle wrote a guest for a change undone since without the cursor seeing
    it: the checksum is back to the recorded one, but state differs from the derivation."""
    _settled(world, derivations)
    order_id, _ = _a_guest_order(world)
    with world.shop.connect() as conn:
        old = conn.execute(sa.select(schema.orders.c.billing_first_name,
                                     schema.orders.c.updated_at)
                           .where(schema.orders.c.id == order_id)).one()
    later = datetime.now() + timedelta(days=400)
    world.write(schema.orders, order_id, billing_first_name="Briefly", updated_at=later)
    assert world.sync().resources[GUESTS].counts.sent == 1  # incremental: the cursor saw it
    # undone, unseen:
    world.write(schema.orders, order_id, billing_first_name=old[0], updated_at=old[1])
    guests, derived = _full(world, derivations)
    assert derived > 0
    assert guests.counts.sent == 1
    assert world.differences() == []
