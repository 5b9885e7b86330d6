"""Source fingerprints in state (source_marks, record_unchanged), the pending index, sampling."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_sync.state import Outcome, SourceMark, StateStore
from cdc_sync.state.tables import sync_state
from helpers.statements import Statements


def _synced(key: str, fp: str = "f", source: str | None = "s", payload: str | None = None
            ) -> Outcome:
    return Outcome(key, key, fp, payload=payload, source_fingerprint=source)


def _stored_source(engine: sa.Engine, key: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sync_state.c.source_fingerprint).where(sync_state.c.key == key)
        ).scalar_one()


def test_source_marks_are_only_of_synced_unforced_rows_with_a_source_fingerprint(
    store: StateStore,
) -> None:
    store.mark_synced("orders", [
        _synced("a", source="sa"), _synced("b", source=None), _synced("c"), _synced("d"),
        _synced("e"), _synced("g", source="sg", payload='{"id":"g"}'),
    ])
    store.mark_pending("orders", [Outcome("c", "c", "f2", reason="503")])
    store.mark_rejected("orders", [Outcome("d", "d", "f2", reason="bad")])
    store.mark_gone("orders", ["e"])
    store.mark_synced("products", [_synced("a", source="other")])
    marks = store.source_marks("orders", ["a", "b", "c", "d", "e", "g", "never-seen"])
    assert marks == {"a": SourceMark("sa", False), "g": SourceMark("sg", True)}
    assert isinstance(marks["a"], SourceMark)
    assert store.source_marks("orders", []) == {}


def test_forced_rows_have_no_source_mark_until_synced_again(store: StateStore) -> None:
    store.mark_synced("orders", [_synced("a", source="s1")])
    store.force(["orders"])
    assert store.source_marks("orders", ["a"]) == {}
    store.mark_synced("orders", [_synced("a", source="s2")])
    assert store.source_marks("orders", ["a"]) == {"a": SourceMark("s2", False)}


def test_source_marks_of_1000_keys_are_one_query(store: StateStore, engine: sa.Engine) -> None:
    store.mark_synced("orders", [_synced(f"k{i:04d}", source=f"s{i}") for i in range(1000)])
    store.source_marks("orders", ["warm-up"])
    keys = [f"k{i:04d}" for i in range(999, -1, -1)]
    with Statements(engine) as counter:
        marks = store.source_marks("orders", keys)
    assert len(counter.statements) == 1
    assert marks == {f"k{i:04d}": SourceMark(f"s{i}", False) for i in range(1000)}


def test_a_source_fingerprint_with_commas_still_comes_back_whole(store: StateStore) -> None:
    # SQLite packs the marks into comma-joined texts; a comma in a fingerprint must not split.
    store.mark_synced("orders", [_synced("a", source="x,y"), _synced("b", source="z")])
    assert store.source_marks("orders", ["a", "b"]) == {
        "a": SourceMark("x,y", False), "b": SourceMark("z", False)
    }


def test_failed_and_gone_rows_lose_their_source_fingerprint(
    store: StateStore, engine: sa.Engine
) -> None:
    store.mark_synced("customers", [_synced(k) for k in ("p", "r", "g", "t")])
    assert _stored_source(engine, "p") == "s"
    store.mark_pending("customers", [Outcome("p", "p", "f", reason="503")])
    store.mark_rejected("customers", [Outcome("r", "r", "f2", reason="bad")])
    store.mark_gone("customers", ["g"])
    store.mark_gone_tagged("customers", {"t": ["deleted"]})
    assert [_stored_source(engine, k) for k in ("p", "r", "g", "t")] == [None] * 4


def test_record_unchanged_touches_only_rows_synced_at_that_fingerprint(
    store: StateStore,
) -> None:
    store.mark_synced("orders", [
        _synced("same", source=None), _synced("moved", source=None),
        _synced("kept", source=None, payload='{"old":1}'), _synced("pending", source=None),
    ])
    store.mark_pending("orders", [Outcome("pending", "pending", "f", reason="503")])
    store.record_unchanged("orders", [
        Outcome("same", "same", "f", payload='{"new":1}', source_fingerprint="s1"),
        Outcome("moved", "moved", "other", payload='{"x":1}', source_fingerprint="s2"),
        Outcome("kept", "kept", "f", source_fingerprint="s3"),
        Outcome("pending", "pending", "f", source_fingerprint="s4"),
        Outcome("never-seen", "never-seen", "f", source_fingerprint="s5"),
    ])
    keys = ["same", "moved", "kept", "pending", "never-seen"]
    assert store.source_marks("orders", keys) == {
        "same": SourceMark("s1", True), "kept": SourceMark("s3", True)
    }
    assert store.payloads("orders", keys) == {"same": '{"new":1}', "kept": '{"old":1}'}
    assert store.lookup("orders", ["pending"])["pending"].status == "pending"


def test_record_unchanged_is_one_executemany(store: StateStore, engine: sa.Engine) -> None:
    store.mark_synced("orders", [_synced(f"k{i}", source=None) for i in range(300)])
    with Statements(engine) as counter:
        store.record_unchanged("orders", [_synced(f"k{i}", source="s") for i in range(300)])
        store.record_unchanged("orders", [])
    assert [sent.executemany for sent in counter.statements] == [True]
    assert len(store.source_marks("orders", [f"k{i}" for i in range(300)])) == 300


# -- the pending index, sampling ---------------------------------------------------------------

def _plan(engine: sa.Engine, statement: str, params: Any) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            return " ".join(str(row[-1]) for row in rows)
        # Tiny tables are read whole whatever the indexes: ask what it would use otherwise.
        conn.exec_driver_sql("SET enable_seqscan = off")
        rows = conn.exec_driver_sql(f"EXPLAIN {statement}", params)
        return " ".join(str(row[0]) for row in rows)


def test_the_pending_key_scan_uses_the_partial_index(store: StateStore, engine: sa.Engine) -> None:
    store.mark_synced("orders", [_synced(f"k{i}") for i in range(50)])
    store.mark_pending("orders", [Outcome("k7", "k7", "f", reason="503")])
    with Statements(engine) as seen:
        assert list(store.iter_pending_keys("orders")) == [["k7"]]
    (statement, params, *_), = seen.statements
    assert "ix_sync_state_pending_keys" in _plan(engine, statement, params)


def test_source_marks_probe_the_primary_key_on_sqlite(store: StateStore, engine: sa.Engine
                                                      ) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the trap (status picked as the index) is SQLite's planner")
    store.mark_synced("orders", [_synced("a")])
    with Statements(engine) as seen:
        store.source_marks("orders", ["a"])
        store.lookup("orders", ["a"])
    for statement, params, *_ in seen.statements:
        plan = _plan(engine, statement, params)
        assert "sqlite_autoindex_sync_state_1 (resource=? AND key=?)" in plan, plan


def test_a_sample_is_live_keys_of_the_resource_spread_over_it(store: StateStore) -> None:
    store.mark_synced("orders", [_synced(f"k{i:05d}") for i in range(3000)])
    store.mark_gone("orders", [f"k{i:05d}" for i in range(0, 3000, 2)])  # the even ones
    store.mark_synced("products", [_synced(f"p{i}") for i in range(10)])
    seen: set[str] = set()
    for _ in range(5):
        sample = store.sample_live_keys("orders", 100)
        assert len(sample) == len(set(sample)) == 100
        assert all(key.startswith("k") and int(key[1:]) % 2 == 1 for key in sample)
        seen.update(sample)
    assert len(seen) > 300  # five samples of 100 out of 1500 barely overlap
    numbers = sorted(int(key[1:]) for key in seen)
    assert numbers[0] < 300  # spread over the whole key range
    assert numbers[-1] > 2700


def test_a_small_resource_is_sampled_whole_or_at_random(store: StateStore) -> None:
    store.mark_synced("orders", [_synced(f"k{i:05d}") for i in range(3000)])
    store.mark_synced("products", [_synced(f"p{i}") for i in range(10)])
    assert sorted(store.sample_live_keys("products", 400)) == sorted(f"p{i}" for i in range(10))
    few = store.sample_live_keys("products", 5)
    assert len(set(few)) == 5
    assert all(key.startswith("p") for key in few)
    assert store.sample_live_keys("categories", 5) == []


def test_a_resource_known_to_be_small_is_listed_once_and_sampled(store: StateStore,
                                                                   engine: sa.Engine) -> None:
    store.mark_synced("orders", [_synced(f"k{i:05d}") for i in range(3000)])
    store.mark_synced("categories", [_synced(f"c{i:02d}") for i in range(50)])
    store.mark_gone("categories", [f"c{i:02d}" for i in range(0, 50, 5)])
    live = {f"c{i:02d}" for i in range(50) if i % 5}
    with Statements(engine) as seen:
        whole = store.sample_live_keys("categories", 400, live=len(live))
        few = store.sample_live_keys("categories", 10, live=len(live))
    assert sorted(whole) == sorted(live)
    assert len(set(few)) == 10
    assert set(few) <= live
    assert len(seen.statements) == 2  # one query each: no probing of the other resources' rows


# -- rechecks after an attempt with an unknown outcome ------------------------------------------

def _due(store: StateStore, when: datetime) -> list[str]:
    return [key for page in store.iter_due_rechecks("orders", due_by=when) for key in page]


def test_a_recheck_is_due_after_its_time_and_keeps_the_row_out_of_the_source_marks(
    store: StateStore,
) -> None:
    now = datetime.now(UTC)
    later = now + timedelta(minutes=5)
    store.mark_synced("orders", [replace(_synced("a"), recheck_after=later), _synced("b")])
    assert _due(store, now) == []
    assert _due(store, later + timedelta(seconds=1)) == ["a"]
    assert set(store.source_marks("orders", ["a", "b"])) == {"b"}, "a must be composed again"


def test_a_clean_send_keeps_a_recheck_still_ahead_and_ends_one_that_is_due(
    store: StateStore,
) -> None:
    now = datetime.now(UTC)
    # Ahead: the unanswered attempt may still land after this newer, cleanly acknowledged send.
    store.mark_synced("orders", [replace(_synced("a"), recheck_after=now + timedelta(minutes=5))])
    store.mark_synced("orders", [_synced("a", fp="newer")])
    store.mark_pending("orders", [Outcome("a", "a", "newest", reason="503")])
    assert _due(store, now + timedelta(minutes=6)) == ["a"]
    # Due: the resend after the grace is the last word; nothing more to wait for.
    store.mark_synced("orders", [replace(_synced("b"), recheck_after=now - timedelta(seconds=1))])
    assert _due(store, now) == ["b"]
    store.mark_synced("orders", [_synced("b", fp="again")])
    assert _due(store, now + timedelta(days=1)) == ["a"]


# -- a record synced again (Outcome.synced_before: updated in place) ---------------------------

def _again(key: str, fp: str, metrilo_id: str | None = None) -> Outcome:
    return replace(_synced(key, fp=fp), metrilo_id=metrilo_id or key, synced_before=True)


def test_a_record_synced_again_is_one_update_in_place(
    store: StateStore, engine: sa.Engine,
) -> None:
    store.mark_synced("orders", [_synced("a", source="s1"), _synced("b", source="s1")])
    with Statements(engine) as counter:
        store.mark_synced("orders", [_again("a", "f2"), _again("b", "f2"), _synced("c")])
    writes = [s.statement.split()[0].upper() for s in counter.statements
              if s.statement.split()[0].upper() in ("INSERT", "UPDATE")]
    assert writes == ["UPDATE", "INSERT"]  # the new one alone is upserted
    rows = store.lookup("orders", ["a", "b", "c"])
    assert {k: (r.status.value, r.synced_fingerprint, r.metrilo_id) for k, r in rows.items()} == {
        "a": ("synced", "f2", "a"), "b": ("synced", "f2", "b"), "c": ("synced", "f", "c")}
    assert store.source_marks("orders", ["a"]) == {"a": SourceMark("s", False)}


def test_a_record_synced_again_whose_row_changed_since_it_was_planned_is_written_whole(
    store: StateStore,
) -> None:
    store.mark_synced("orders", [_synced("p"), _synced("m"), _synced("g"), _synced("ok")])
    store.mark_pending("orders", [Outcome("p", "p", "f1", reason="503")])  # failed since
    store.mark_synced("orders", [Outcome("m", "old@x", "f")])  # another Metrilo id since
    store.mark_gone("orders", ["g"])
    store.mark_synced("orders", [_again("p", "f2"), _again("m", "f2", "new@x"),
                                 _again("g", "f2"), _again("ok", "f2")])
    rows = store.lookup("orders", ["p", "m", "g", "ok"])
    assert {k: (r.status.value, r.synced_fingerprint, r.metrilo_id, r.attempts, r.last_error)
            for k, r in rows.items()} == {
        "p": ("synced", "f2", "p", 0, None), "m": ("synced", "f2", "new@x", 0, None),
        "g": ("synced", "f2", "g", 0, None), "ok": ("synced", "f2", "ok", 0, None)}
    assert list(store.iter_pending_keys("orders")) == []


def test_a_record_synced_again_keeps_a_recheck_still_ahead_and_ends_one_that_is_due(
    store: StateStore,
) -> None:
    now = datetime.now(UTC)
    store.mark_synced("orders", [replace(_synced("a"), recheck_after=now + timedelta(minutes=5)),
                                 replace(_synced("b"), recheck_after=now - timedelta(seconds=1))])
    store.mark_synced("orders", [_again("a", "newer"), _again("b", "again")])
    assert _due(store, now + timedelta(days=1)) == ["a"]
    assert store.lookup("orders", ["a"])["a"].synced_fingerprint == "newer"
