"""StateStore against real SQLite and PostgreSQL state DBs."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_sync.core.diff import Change, classify
from cdc_sync.errors import StateError
from cdc_sync.state import Outcome, RunStatus, StateStore, Status
from cdc_sync.state.tables import sync_state
from helpers.statements import Statements


def _outcomes(n: int, fp: str = "fp", start: int = 0) -> list[Outcome]:
    return [Outcome(key=f"k{i:05d}", metrilo_id=f"id{i}", fingerprint=fp) for i in
            range(start, start + n)]


# -- lookup ---------------------------------------------------------------------------------

def test_lookup_returns_only_known_keys(store: StateStore) -> None:
    store.mark_synced("products", [Outcome("p1", "p1", "fa")])
    found = store.lookup("products", ["p1", "p2"])
    assert set(found) == {"p1"}
    assert found["p1"].status is Status.SYNCED


def test_lookup_keeps_resources_apart(store: StateStore) -> None:
    store.mark_synced("products", [Outcome("1", "1", "fa")])
    assert store.lookup("categories", ["1"]) == {}


def test_lookup_of_1000_keys_is_one_query(store: StateStore, engine: sa.Engine) -> None:
    store.mark_synced("orders", _outcomes(1000))
    store.lookup("orders", ["warm-up"])
    keys = [f"k{i:05d}" for i in range(1000)]
    with Statements(engine) as counter:
        found = store.lookup("orders", keys)
    assert len(found) == 1000
    assert len(counter.statements) == 1


def test_lookup_of_no_keys_asks_nothing(store: StateStore, engine: sa.Engine) -> None:
    with Statements(engine) as counter:
        assert store.lookup("orders", []) == {}
    assert counter.statements == []


# -- mark_* -----------------------------------------------------------------------------------

def test_mark_synced_records_fingerprint_tags_and_time(store: StateStore) -> None:
    store.mark_synced("customers", [Outcome("c1", "a@example.com", "f1", tags=("vip", "é"))])
    row = store.lookup("customers", ["c1"])["c1"]
    assert row.status is Status.SYNCED
    assert row.synced_fingerprint == row.attempt_fingerprint == "f1"
    assert row.tags == ("vip", "é")
    assert row.metrilo_id == "a@example.com"
    assert (row.forced, row.attempts, row.last_error) == (False, 0, None)
    assert row.synced_at is None  # lookup leaves it out (see StateRow)


def test_times_written_by_the_fast_path_read_back_as_aware_utc(
    store: StateStore, engine: sa.Engine
) -> None:
    before = datetime.now(UTC)
    store.mark_synced("customers", [Outcome("c1", "a@x", "f1")])
    store.mark_rejected("customers", [Outcome("c2", "b@x", "f2", reason="bad")])
    after = datetime.now(UTC)
    with engine.connect() as conn:
        synced_at, updated_at = conn.execute(
            sa.select(sync_state.c.synced_at, sync_state.c.updated_at)
            .where(sync_state.c.key == "c1")
        ).one()
    assert synced_at == updated_at
    assert synced_at.tzinfo is UTC
    assert before <= synced_at <= after
    store.mark_rejected("customers", [Outcome("c1", "a@x", "f3", reason="bad")])
    rejected = {row.key: row for row in store.rejected("customers")}
    assert rejected["c1"].synced_at == synced_at  # kept: what Metrilo last accepted
    assert rejected["c2"].synced_at is None
    # The fast path's text sorts with SQLAlchemy's, so `updated_at < X` queries still work.
    assert list(store.iter_pending_keys("customers")) == []
    store.mark_pending("customers", [Outcome("c2", "b@x", "f2", reason="503")])
    assert list(store.iter_pending_keys("customers", untouched_since=before)) == []
    assert list(store.iter_pending_keys("customers", untouched_since=datetime.now(UTC))) == [
        ["c2"]
    ]


def test_times_written_by_the_fast_path_equal_the_same_time_bound_by_sqlalchemy(
    store: StateStore, engine: sa.Engine
) -> None:
    # A whole second: sqlite3's own datetime adapter would have left the microseconds out,
    # so SQL comparing it with a time bound by SQLAlchemy would not find it equal.
    due = datetime(2026, 12, 6, 23, 50, 1, tzinfo=UTC)
    store.mark_synced("orders", [Outcome("o1", "o1", "f1", recheck_after=due)])
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(sync_state.c.key).where(sync_state.c.recheck_after == due)
        ).scalars().all()
    assert found == ["o1"]


def test_a_batch_of_500_outcomes_is_written_in_one_statement(
    store: StateStore, engine: sa.Engine
) -> None:
    store.lookup("orders", ["warm-up"])
    with Statements(engine) as counter:
        store.mark_synced("orders", _outcomes(500))
    writes = [s for s in counter.statements
              if s.statement.lstrip().upper().startswith("INSERT")]
    assert len(writes) == 1
    # SQLite: one statement over the batch as JSON, whose step runs without the GIL
    # (statements._synced_batch); PostgreSQL: one executemany, pipelined by psycopg.
    assert writes[0].executemany is (engine.dialect.name != "sqlite")
    assert store.count_by_status("orders")[Status.SYNCED] == 500


def test_the_same_key_twice_in_a_batch_keeps_the_last(store: StateStore) -> None:
    store.mark_synced("products", [Outcome("p", "p", "first"), Outcome("p", "p", "second")])
    assert store.lookup("products", ["p"])["p"].synced_fingerprint == "second"


def test_pending_counts_attempts_and_keeps_the_synced_fingerprint(store: StateStore) -> None:
    store.mark_synced("customers", [Outcome("c1", "a@x", "f1", tags=("vip",))])
    store.mark_pending("customers", [Outcome("c1", "a@x", "f2", reason="HTTP 503")])
    store.mark_pending("customers", [Outcome("c1", "a@x", "f2", reason="timeout")])
    row = store.lookup("customers", ["c1"])["c1"]
    assert row.status is Status.PENDING
    assert (row.synced_fingerprint, row.attempt_fingerprint) == ("f1", "f2")
    assert row.attempts == 2
    assert row.last_error == "timeout"
    assert row.tags == ("vip",)


def test_a_record_never_synced_stays_without_synced_fingerprint(store: StateStore) -> None:
    store.mark_pending("orders", [Outcome("o1", "o1", "f1", reason="customer pending")])
    row = store.lookup("orders", ["o1"])["o1"]
    assert row.synced_fingerprint is None
    assert row.attempts == 1


def test_synced_after_failures_resets_attempts_and_error(store: StateStore) -> None:
    store.mark_pending("orders", [Outcome("o1", "o1", "f1", reason="HTTP 500")])
    store.mark_synced("orders", [Outcome("o1", "o1", "f1")])
    row = store.lookup("orders", ["o1"])["o1"]
    assert (row.status, row.attempts, row.last_error) == (Status.SYNCED, 0, None)


def test_rejected_keeps_what_metrilo_last_accepted(store: StateStore) -> None:
    store.mark_synced("customers", [Outcome("c1", "a@x", "f1", tags=("vip",))])
    store.mark_rejected("customers", [Outcome("c1", "a@x", "f2", reason="email is not valid")])
    row = store.lookup("customers", ["c1"])["c1"]
    assert row.status is Status.REJECTED
    assert (row.synced_fingerprint, row.attempt_fingerprint) == ("f1", "f2")
    assert row.last_error == "email is not valid"
    assert row.tags == ("vip",)


def test_gone_marks_only_known_keys_and_leaves_live_count(store: StateStore) -> None:
    store.mark_synced("products", _outcomes(3))
    store.mark_gone("products", ["k00000", "never-seen"])
    assert store.lookup("products", ["k00000"])["k00000"].status is Status.GONE
    assert store.lookup("products", ["never-seen"]) == {}
    assert store.live_count("products") == 2


def test_count_by_status_names_every_status(store: StateStore) -> None:
    store.mark_synced("orders", _outcomes(2))
    store.mark_rejected("orders", _outcomes(1, start=5))
    assert store.count_by_status("orders") == {
        Status.SYNCED: 2, Status.PENDING: 0, Status.REJECTED: 1, Status.GONE: 0
    }


def test_a_state_row_feeds_classify(store: StateStore) -> None:
    store.mark_synced("orders", [Outcome("o1", "o1", "f1")])
    store.mark_rejected("orders", [Outcome("o2", "o2", "f2", reason="bad")])
    rows = store.lookup("orders", ["o1", "o2"])
    assert classify("f1", rows["o1"]) is Change.UNCHANGED
    assert classify("f9", rows["o1"]) is Change.CHANGED
    assert classify("f2", rows["o2"]) is Change.UNCHANGED


# -- keyset iteration, dependencies ---------------------------------------------------------

def test_live_keys_come_in_key_order_chunks_without_gone(
    store: StateStore, engine: sa.Engine
) -> None:
    store.mark_synced("orders", _outcomes(2500))
    store.mark_gone("orders", ["k00001"])
    store.mark_synced("products", _outcomes(10))
    with Statements(engine) as counter:
        chunks = list(store.iter_live_keys("orders", chunk=1000))
    assert [len(c) for c in chunks] == [1000, 1000, 499]
    flat = [k for c in chunks for k in c]
    assert flat == sorted(flat)
    assert "k00001" not in flat
    assert len(set(flat)) == 2499
    assert len(counter.statements) == 3


def test_live_keys_of_an_exact_multiple_end_cleanly(store: StateStore) -> None:
    store.mark_synced("orders", _outcomes(4))
    assert [len(c) for c in store.iter_live_keys("orders", chunk=2)] == [2, 2]


def test_dependency_status_prefers_a_synced_row(store: StateStore) -> None:
    store.mark_rejected("customers", [Outcome("1", "a@x", "f", reason="bad")])
    store.mark_synced("guest_customers", [Outcome("g1", "a@x", "f")])
    store.mark_pending("guest_customers", [Outcome("g2", "b@x", "f", reason="503")])
    store.mark_synced("products", [Outcome("p", "c@x", "f")])
    found = store.dependency_status(["customers", "guest_customers"], {"a@x", "b@x", "c@x"})
    assert found == {"a@x": Status.SYNCED, "b@x": Status.PENDING}


# -- resync and retry -------------------------------------------------------------------------

def test_force_marks_live_rows_until_they_are_sent(store: StateStore) -> None:
    store.mark_synced("products", _outcomes(3))
    store.mark_gone("products", ["k00002"])
    store.mark_synced("categories", _outcomes(2))
    assert store.force(["products"]) == 2
    assert store.forced_count("products") == 2
    assert store.forced_count("categories") == 0
    row = store.lookup("products", ["k00000"])["k00000"]
    assert classify(row.synced_fingerprint or "", row) is Change.FORCED
    store.mark_synced("products", _outcomes(1))
    assert store.forced_count("products") == 1


def test_force_with_no_resources_means_all(store: StateStore) -> None:
    store.mark_synced("products", _outcomes(2))
    store.mark_synced("orders", _outcomes(3))
    assert store.force([]) == 5


def test_retry_makes_rejected_pending(store: StateStore) -> None:
    store.mark_rejected("orders", [Outcome("o1", "o1", "f", reason="bad")])
    store.mark_rejected("products", [Outcome("p1", "p1", "f", reason="bad")])
    assert store.retry_rejected("orders") == 1
    row = store.lookup("orders", ["o1"])["o1"]
    assert (row.status, row.attempts) == (Status.PENDING, 0)
    assert classify("f", row) is Change.RETRY
    assert store.lookup("products", ["p1"])["p1"].status is Status.REJECTED
    assert store.retry_rejected() == 1


def test_rejected_and_top_reasons_summarise_rejections(store: StateStore) -> None:
    store.mark_rejected("orders", [
        Outcome("o1", "o1", "f", reason="amount missing"),
        Outcome("o2", "o2", "f", reason="amount missing"),
        Outcome("o3", "o3", "f", reason="bad email"),
    ])
    store.mark_synced("orders", [Outcome("o4", "o4", "f")])
    assert {r.key for r in store.rejected("orders")} == {"o1", "o2", "o3"}
    assert len(store.rejected("orders", limit=2)) == 2
    assert store.top_reasons("orders") == [("amount missing", 2), ("bad email", 1)]


# -- runs, meta, resync requests ------------------------------------------------------------

def test_runs_are_recorded_newest_first(store: StateStore) -> None:
    first = store.start_run("sync")
    store.finish_run(first, status=RunStatus.OK, counts={"orders": {"scanned": 3, "sent": 2}})
    second = store.start_run("resync")
    runs = store.last_runs()
    assert [r.id for r in runs] == [second, first]
    assert runs[0].status == "running"
    assert runs[0].finished_at is None
    assert runs[1].counts == {"orders": {"scanned": 3, "sent": 2}}
    assert runs[1].finished_at is not None
    assert runs[1].finished_at.tzinfo is UTC


def test_finishing_an_unknown_run_is_an_error(store: StateStore) -> None:
    with pytest.raises(StateError, match="run 999 does not exist"):
        store.finish_run(999, status=RunStatus.OK, counts={})


def test_meta_values_are_set_and_overwritten(store: StateStore) -> None:
    assert store.get_meta("hwm:orders") is None
    store.set_meta("hwm:orders", "2024-01-01")
    store.set_meta("hwm:orders", "2024-02-01")
    assert store.get_meta("hwm:orders") == "2024-02-01"


def test_resync_requests_are_taken_oldest_first_and_once(store: StateStore) -> None:
    first = store.request_resync(["products"], requested_by="cli")
    second = store.request_resync([], requested_by="cli")
    taken = store.take_resync_request()
    assert taken is not None
    assert (taken.id, taken.resources, taken.requested_by) == (first, ("products",), "cli")
    again = store.take_resync_request()
    assert again is not None
    assert (again.id, again.resources) == (second, ())
    assert store.take_resync_request() is None
    store.finish_resync_request(first)


def test_concurrent_takers_never_share_a_request(state_url: str, store: StateStore) -> None:
    ids = {store.request_resync([], requested_by=f"t{i}") for i in range(20)}
    taken: list[int] = []
    lock = threading.Lock()

    def take_all() -> None:
        with StateStore.open(state_url, upgrade=False) as own:
            while (request := own.take_resync_request()) is not None:
                with lock:
                    taken.append(request.id)

    threads = [threading.Thread(target=take_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(ids)


# -- engines and errors ---------------------------------------------------------------------

def test_missing_tables_say_to_run_db_upgrade(state_url: str) -> None:
    with StateStore.open(state_url, upgrade=False) as store, \
            pytest.raises(StateError, match="cdc-sync db upgrade"):
        store.lookup("orders", ["o1"])


def test_unopenable_sqlite_file_names_the_db_and_the_fix(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/missing-dir/state.sqlite"
    with pytest.raises(StateError, match=r"state DB sqlite:///.*missing-dir.*fix: make sure"):
        StateStore.open(url)


def test_unreachable_server_error_hides_the_password() -> None:
    url = "postgresql+psycopg://cdc:s3cret-pw@127.0.0.1:1/state?connect_timeout=2"
    with pytest.raises(StateError) as caught:
        StateStore.open(url)
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert "127.0.0.1:1" in message
    assert "fix:" in message


def test_a_non_sql_state_url_is_refused_with_the_fix() -> None:
    with pytest.raises(StateError, match="mysql is not supported"):
        StateStore.open("mysql+pymysql://root@127.0.0.1/state")


def test_close_leaves_a_handed_in_engine_alone(engine: sa.Engine) -> None:
    store = StateStore(engine)
    store.set_meta("x", "1")
    pool_before = engine.pool
    store.close()
    assert engine.pool is pool_before  # dispose() would have replaced the pool
    assert StateStore(engine).get_meta("x") == "1"


def test_a_run_left_running_by_a_dead_process_is_marked_interrupted_with_its_progress(
    store: StateStore,
) -> None:
    killed = store.start_run("sync")
    store.record_run_progress(killed, {"customers": {"sent": 7}})
    assert store.interrupt_unfinished_runs() == 1
    store.finish_run(store.start_run("sync"), status=RunStatus.OK, counts={})
    older = store.last_runs(2)[1]
    assert (older.id, older.status) == (killed, "interrupted")
    assert older.counts == {"customers": {"sent": 7}}
    assert older.finished_at is not None


def test_sqlite_commits_leave_the_wal_checkpoint_to_a_thread(tmp_path: Path) -> None:
    """Writers do not copy the log into the database file once it passes SQLite's usual 1,000
    pages (a cycle would wait for that and its fsync): the store's checkpoint thread does,
    right after the writes, with nothing else written meanwhile."""
    path = tmp_path / "state.sqlite"
    with StateStore.open(f"sqlite:///{path}") as store:
        with store._engine.connect() as conn:
            backstop = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
        assert backstop > 10_000  # SQLite's default, 1,000, is about one cycle's writes
        store.mark_synced("orders", _outcomes(30_000))  # about 2,000 pages of log
        deadline = time.monotonic() + 10
        while path.stat().st_size < 30_000 * 50 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.stat().st_size > 30_000 * 50  # the rows reached the database file
        assert store.lookup("orders", ["k29999"])["k29999"].status is Status.SYNCED


def test_a_closed_sqlite_store_leaves_its_writes_in_the_database_file(tmp_path: Path) -> None:
    """The checkpoint thread waits for the writes to pause, which a one-shot command ends
    before: closing the store checkpoints what the log holds."""
    path = tmp_path / "state.sqlite"
    with StateStore.open(f"sqlite:///{path}") as store:
        store.mark_synced("orders", _outcomes(30_000))
    assert path.stat().st_size > 30_000 * 50
