"""The delivery's state writes in a thread of their own (cycle/statewriter.py): in order,
bounded, every one committed before anything after the delivery reads state, and a failing
write stops the cycle with its own error."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.cycle.statewriter import DEPTH, StateWriter
from cdc_sync.demo import mutate
from cdc_sync.errors import MetriloFatalError, StateError
from cdc_sync.state import StateStore, Status
from helpers.backends import BOTH_STATES
from helpers.world import World
from helpers.worlds import world_fixture

world = world_fixture(BOTH_STATES)
sqlite_world = world_fixture(BOTH_STATES[:1])


# -- the writer alone ----------------------------------------------------------------------

def test_writes_run_in_the_order_handed_over_and_close_waits_for_them() -> None:
    done: list[int] = []

    def write(n: int) -> None:
        time.sleep(0.01)  # slower than handing over: close must wait, not the writes
        done.append(n)

    with StateWriter("test") as writer:
        for n in range(DEPTH * 3):
            writer.write(lambda n=n: write(n))  # type: ignore[misc]
    assert done == list(range(DEPTH * 3))


def test_a_writer_handed_nothing_starts_no_thread() -> None:
    # A no-change cycle delivers nothing for every resource: no thread started and joined.
    before = threading.active_count()
    with StateWriter("test"):
        assert threading.active_count() == before
    assert threading.active_count() == before


def test_a_failed_write_is_raised_once_and_nothing_after_it_is_written() -> None:
    done: list[int] = []
    failure = StateError("state DB x: could not record 1 synced orders: boom; fix: y")

    def fail() -> None:
        raise failure

    writer = StateWriter("test")
    writer.write(lambda: done.append(1))
    writer.write(fail)

    def hand_over_more() -> None:
        for n in range(2, 50):  # the error surfaces at a later hand-over...
            writer.write(lambda n=n: done.append(n))  # type: ignore[misc]
            time.sleep(0.005)
        writer.close()  # ... or at the barrier at the latest

    with pytest.raises(StateError) as raised:
        hand_over_more()
    assert raised.value is failure
    writer.close()  # raised once: closing again is quiet
    assert done[0] == 1
    assert len(done) == 1


def test_an_error_leaving_the_block_goes_on_and_the_writers_own_failure_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Metrilo's 401 (or an interrupt) while a write fails in the writer: the cycle's own error
    # says what stopped it and what to fix; the writer's is logged, not raised over it.
    failure = StateError("state DB x: could not record 20 synced orders: disk full; fix: y")
    stopped = MetriloFatalError("Metrilo answered 401: check METRILO_API_TOKEN",
                                status_code=401)

    def fail_slowly() -> None:
        time.sleep(0.05)
        raise failure

    def deliver_until_metrilo_stops_it() -> None:
        with StateWriter("orders") as writer:
            writer.write(fail_slowly)
            raise stopped

    with pytest.raises(MetriloFatalError) as raised:
        deliver_until_metrilo_stops_it()
    assert raised.value is stopped
    assert "the state writes of orders also failed" in caplog.text
    assert "disk full" in caplog.text


def test_at_most_depth_writes_wait_and_the_next_hand_over_waits_for_room() -> None:
    release = threading.Event()

    def wait_for_release() -> None:
        release.wait()

    writer = StateWriter("test")
    writer.write(wait_for_release)  # taken by the thread, which now waits
    time.sleep(0.05)
    for _ in range(DEPTH):
        writer.write(lambda: None)
    blocked = threading.Thread(target=writer.write, args=(lambda: None,))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive(), "the queue took more than DEPTH writes"
    release.set()
    blocked.join(5)
    assert not blocked.is_alive()
    writer.close()


def test_flush_waits_for_the_writes_handed_over_and_the_writer_goes_on() -> None:
    # The read passes flush before reading keys from state (the pending walk leaves out what
    # the delivery wrote): flush must return only once every earlier write is done.
    done: list[int] = []

    def write(n: int) -> None:
        time.sleep(0.01)
        done.append(n)

    with StateWriter("test") as writer:
        for n in range(DEPTH):
            writer.write(lambda n=n: write(n))  # type: ignore[misc]
        writer.flush()
        assert done == list(range(DEPTH))
        writer.write(lambda: write(DEPTH))
    assert done == list(range(DEPTH + 1))


def test_flush_after_a_failed_write_raises_it_instead_of_waiting_forever() -> None:
    failure = StateError("state DB x: could not record 1 pending orders: boom; fix: y")

    def fail() -> None:
        raise failure

    writer = StateWriter("test")
    writer.write(fail)
    writer.write(lambda: None)  # drained, not written, after the error
    with pytest.raises(StateError) as raised:
        writer.flush()
    assert raised.value is failure
    writer.close()


# -- in a cycle, on a real state DB ----------------------------------------------------------

def _on_state(world: World, sqlite_sql: str, postgresql_sql: str) -> None:
    """Run DDL on the world's (migrated) state DB."""
    world.state()  # creates the tables
    engine = sa.create_engine(world.state_url)
    try:
        with engine.begin() as conn:
            sql = sqlite_sql if engine.dialect.name == "sqlite" else postgresql_sql
            for statement in sql.split(";;"):
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _slow_customer_writes(world: World) -> None:
    """Every customer row written takes ~20 ms: the customers' writes are still queued when
    their delivery's last batch is answered."""
    _on_state(
        world,
        "CREATE TRIGGER slow AFTER INSERT ON sync_state WHEN NEW.resource = 'customers' "
        "BEGIN SELECT count(*) FROM (WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
        "FROM r WHERE i < 100000) SELECT i FROM r); END",
        "CREATE FUNCTION slow() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.02); "
        "RETURN NEW; END $$ LANGUAGE plpgsql;;"
        "CREATE TRIGGER slow AFTER INSERT ON sync_state FOR EACH ROW "
        "WHEN (NEW.resource = 'customers') EXECUTE FUNCTION slow()",
    )


def test_the_next_resource_sees_every_write_of_the_one_before(world: World) -> None:
    # Orders check their customer in state before they are sent: were the customers' writes
    # not all committed when their delivery ended (the barrier), orders would wait for them.
    _slow_customer_writes(world)
    with world.client(max_items=10) as client:
        report = world.sync(client=client)
    assert report.ok, report.errors()
    assert report.resources[Resource.ORDERS].counts.waiting == 0
    counts = world.state().count_by_status("orders")
    assert counts[Status.PENDING] == 0
    assert counts[Status.SYNCED] == report.resources[Resource.ORDERS].counts.sent > 0
    assert world.differences() == []


def _orders_refused_from(world: World, key: int) -> None:
    _on_state(
        world,
        "CREATE TRIGGER refuse BEFORE INSERT ON sync_state WHEN NEW.resource = 'orders' "
        f"AND NEW.key = '{key}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION "
        "'refused by the test'; END $$ LANGUAGE plpgsql;;"
        "CREATE TRIGGER refuse BEFORE INSERT ON sync_state FOR EACH ROW "
        f"WHEN (NEW.resource = 'orders' AND NEW.key = '{key}') EXECUTE FUNCTION refuse()",
    )


def test_a_write_failing_in_the_writer_stops_the_cycle_with_its_state_error(
    world: World,
) -> None:
    _orders_refused_from(world, 150)
    with world.client(max_items=20, concurrency=1) as client, \
            pytest.raises(StateError) as raised:
        world.sync(client=client)
    text = str(raised.value)
    assert "could not record 20 synced orders" in text
    assert "refused by the test" in text
    assert "; fix: " in text
    state = world.state()
    last = state.last_runs(1)[0]
    assert last.status == "failed"
    assert "refused by the test" in (last.error or "")
    synced = _synced_order_keys(world)
    assert synced, "the batches before the failing one are in state"
    assert all(key < 141 for key in synced), "nothing after the failed batch is written"


def _synced_order_keys(world: World) -> list[int]:
    return _order_keys(world, "status = 'synced'")


def _order_keys(world: World, where: str) -> list[int]:
    """The orders' keys in state, as numbers, of the rows `where` holds for."""
    engine = sa.create_engine(world.state_url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                f"SELECT key FROM sync_state WHERE resource = 'orders' AND {where}"
            ).fetchall()
    finally:
        engine.dispose()
    return sorted(int(row[0]) for row in rows)


# -- the planner's writes, through the same writer -------------------------------------------

def _order_30_refused_slowly(world: World) -> None:
    """Order 30's synced write takes ~0.5 s, then fails: the writer is busy with it while the
    cycle's thread plans the chunks after it."""
    _on_state(
        world,
        "CREATE TRIGGER refuse_update BEFORE UPDATE ON sync_state WHEN NEW.resource = 'orders' "
        "AND NEW.key = '30' AND NEW.status = 'synced' BEGIN SELECT count(*) FROM (WITH "
        "RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 2500000) "
        "SELECT i FROM r); SELECT RAISE(ABORT, 'refused by the test'); END;;"
        "CREATE TRIGGER refuse_insert BEFORE INSERT ON sync_state WHEN NEW.resource = 'orders' "
        "AND NEW.key = '30' AND NEW.status = 'synced' BEGIN SELECT count(*) FROM (WITH "
        "RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 2500000) "
        "SELECT i FROM r); SELECT RAISE(ABORT, 'refused by the test'); END",
        "CREATE FUNCTION refuse_slowly() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.5); "
        "RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql;;"
        "CREATE TRIGGER refuse_slowly BEFORE INSERT OR UPDATE ON sync_state FOR EACH ROW "
        "WHEN (NEW.resource = 'orders' AND NEW.key = '30' AND NEW.status = 'synced') "
        "EXECUTE FUNCTION refuse_slowly()",
    )


def test_the_planners_writes_join_the_writer_nothing_after_a_failed_write_is_written(
    world: World,
) -> None:
    # A full cycle with the orders' source marks gone: each chunk of 10 has unchanged orders
    # (the planner writes their marks) and, from order 22 on, changed ones (sent, the even
    # keys). Order 30's batch (22-60) fails slowly in the writer. In one FIFO, every write
    # handed over after it, the planner's marks too, is left unwritten; written from the
    # cycle's thread, the marks of the chunks planned meanwhile (up to order 200) would be.
    world.sync()
    spoil = ("UPDATE sync_state SET source_fingerprint = NULL WHERE resource = 'orders';;"
             "UPDATE sync_state SET synced_fingerprint = 'spoiled' WHERE resource = 'orders' "
             "AND CAST(key AS INTEGER) >= 22 "
             "AND CAST(key AS INTEGER) / 2 * 2 = CAST(key AS INTEGER)")
    _on_state(world, spoil, spoil)
    _order_30_refused_slowly(world)
    with world.client(max_items=20, concurrency=1) as client, \
            pytest.raises(StateError) as raised:
        world.sync(CycleOptions(full=True), client=client, chunk_size=10)
    assert "refused by the test" in str(raised.value)
    marked = _marked_order_keys(world)
    assert [key for key in marked if key < 22] == list(range(1, 22)), \
        "the marks handed over before the failed write are written"
    # The client reads at most a batch or two ahead of the answers: nothing near the end.
    assert [key for key in marked if key > 150] == [], \
        "marks handed over after the failed write were written"


def _marked_order_keys(world: World) -> list[int]:
    return _order_keys(world, "source_fingerprint IS NOT NULL")


# -- reads of state inside a delivery, behind the writer -------------------------------------

def _order_1_synced_slowly(world: World) -> None:
    """Order 1's synced write takes ~0.5 s (then succeeds): the writer is still on it while
    the cycle's thread goes on to its later passes."""
    _on_state(
        world,
        "CREATE TRIGGER slow_1 BEFORE UPDATE ON sync_state WHEN NEW.resource = 'orders' "
        "AND NEW.key = '1' AND NEW.status = 'synced' BEGIN SELECT count(*) FROM (WITH "
        "RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 2500000) "
        "SELECT i FROM r); END",
        "CREATE FUNCTION slow_1() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.5); "
        "RETURN NEW; END $$ LANGUAGE plpgsql;;"
        "CREATE TRIGGER slow_1 BEFORE UPDATE ON sync_state FOR EACH ROW "
        "WHEN (NEW.resource = 'orders' AND NEW.key = '1' AND NEW.status = 'synced') "
        "EXECUTE FUNCTION slow_1()",
    )


def test_a_record_answered_but_not_yet_written_is_not_sent_again_by_a_later_pass(
    world: World,
) -> None:
    # Order 1 changes first, then 15 more: the since read sends order 1 in its first batch.
    # The reconciliation slice (the window's first: orders 1-4) reads order 1 again after the
    # since read. Answered 200, order 1 is no longer in flight; while its synced write still
    # waits in the writer, state holds its old source mark, so the slice finds it changed
    # and sends it a second time (at d4e8852 the write was committed before the next read).
    world.sync()
    _order_1_synced_slowly(world)
    changed = [1, *range(100, 105)]
    for key in changed:
        mutate.set_order_status(world.shop, key, 5)
    with world.client(max_items=2, concurrency=1) as client:
        report = world.sync(client=client)
    orders = report.resources[Resource.ORDERS]
    assert report.ok, report.errors()
    assert orders.reconciled > 0
    assert orders.counts.sent == len(changed), "a record was sent twice in one cycle"


def test_a_failed_write_leaves_the_run_history_counting_only_what_state_holds(
    world: World,
) -> None:
    # `cdc-sync status` shows the run's counts: "sent" must not count the batches Metrilo
    # answered whose state write failed or was left unwritten after the failure (they are
    # sent again next cycle).
    _orders_refused_from(world, 150)
    with world.client(max_items=20, concurrency=1) as client, pytest.raises(StateError):
        world.sync(client=client)
    last = world.state().last_runs(1)[0]
    assert last.status == "failed"
    assert last.counts["orders"]["sent"] == len(_synced_order_keys(world))


def test_an_in_memory_state_db_is_written_by_the_cycles_thread(sqlite_world: World) -> None:
    # SQLite in memory (a supported state URL: daemon/lease.py) is one database per thread:
    # a writer thread would find no tables ("no such table: sync_state" at the first answer).
    with StateStore.open("sqlite://") as store:
        report = sqlite_world.sync(state=store)
        assert report.ok, report.errors()
        sent = report.resources[Resource.ORDERS].counts.sent
        assert sent > 0
        assert store.count_by_status("orders")[Status.SYNCED] == sent


def test_only_an_in_memory_state_db_keeps_its_writes_off_the_writer_thread(
    world: World,
) -> None:
    assert world.state().thread_bound is False  # a file or a server: the writer thread
    with StateStore.open("sqlite://") as store:
        assert store.thread_bound is True
