"""State's key numbers: integer keys found by a numeric range (a reconciliation slice's share).

State sorts keys as text ('10' before '9'); a slice reads the shop in numeric key order, so
state keeps each integer key's number (sync_state.key_number, migration 0007) in an index.
"""

from __future__ import annotations

from importlib.resources import files

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from cdc_sync.state import StateStore, migrate
from cdc_sync.state.columns import key_number
from cdc_sync.state.engine import create_state_engine
from cdc_sync.state.per_resource import LIVE_NUMBERS, LIVE_NUMBERS_PG, LIVE_UNNUMBERED
from cdc_sync.state.rows import Outcome

_NUMBERED = ["9", "10", "-3", "0", "9223372036854775807", "-9223372036854775808"]
_UNNUMBERED = ["007", "-0", "+5", " 5", "5 ", "a@b.c", "9223372036854775808", "1e3", "[1, 2]",
               "٣"]


@pytest.mark.parametrize("key", _NUMBERED)
def test_an_integers_own_text_has_its_number(key: str) -> None:
    assert key_number(key) == int(key)


@pytest.mark.parametrize("key", _UNNUMBERED)
def test_any_other_key_has_none(key: str) -> None:
    assert key_number(key) is None


def _numbers(store: StateStore, resource: str, **span: int | None) -> list[int]:
    return [n for page in store.iter_live_numbers(resource, chunk=2, **span) for n in page]


def test_writes_keep_the_number_and_a_range_lists_live_keys_in_numeric_order(
        store: StateStore) -> None:
    keys = ["1", "2", "9", "10", "11", "100", "a@b.c", "007"]
    store.mark_synced("orders", [Outcome(k, k, "fp") for k in keys[:5]])
    store.mark_pending("orders", [Outcome(k, k, "fp") for k in keys[5:]])
    store.mark_synced("products", [Outcome("5", "5", "fp")])
    store.mark_gone("orders", ["9"])

    assert _numbers(store, "orders") == [1, 2, 10, 11, 100]  # not '10' < '2' < '9'
    assert _numbers(store, "orders", after=2, upto=11) == [10, 11]
    assert _numbers(store, "orders", after=10) == [11, 100]
    assert _numbers(store, "orders", upto=1) == [1]
    assert _numbers(store, "orders", after=100) == []
    assert [k for page in store.iter_live_keys_unnumbered("orders") for k in page] == [
        "007", "a@b.c"]
    # A row written again (synced after pending) keeps its number.
    store.mark_synced("orders", [Outcome("100", "100", "fp2")])
    assert _numbers(store, "orders", after=11) == [100]


def _alembic(conn: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("cdc_sync.migrations")))
    config.attributes["connection"] = conn
    return config


def test_the_migration_numbers_the_rows_a_state_db_already_holds(state_url: str) -> None:
    engine = create_state_engine(state_url)
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic(conn), "0006")
            for key in [*_NUMBERED, *_UNNUMBERED]:
                conn.execute(sa.text(
                    "INSERT INTO sync_state (resource, key, status, tags, forced, attempts, "
                    "updated_at) VALUES ('orders', :key, 'synced', '[]', false, 0, "
                    "CURRENT_TIMESTAMP)"), {"key": key})
        migrate.upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT key, key_number FROM sync_state")).all()
        found: dict[str, int | None] = dict(rows)
        assert found == {key: key_number(key) for key in [*_NUMBERED, *_UNNUMBERED]}
        with StateStore(engine) as store:
            assert _numbers(store, "orders") == sorted(int(k) for k in _NUMBERED)
    finally:
        engine.dispose()


def _plan(engine: sa.Engine, sql: str, params: tuple[object, ...]) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return " ".join(str(row[-1]) for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + sql, params))
        conn.exec_driver_sql("SET enable_seqscan = off")  # an empty table: scans win
        sql = sql.replace("+key", "key").replace("?", "%s")
        return " ".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql, params))


def test_a_slices_range_is_an_index_range_in_numeric_order(engine: sa.Engine) -> None:
    """Per live status a range of the status index, merged in order: no row read, nothing
    sorted but a page per status (PostgreSQL) (whatever the table holds)."""
    if engine.dialect.name == "sqlite":
        plan = _plan(engine, LIVE_NUMBERS, ("orders", 5, 500) * 3 + (1000,))
        assert "MERGE (UNION ALL)" in plan, plan
        assert plan.count("USING COVERING INDEX ix_sync_state_resource_status") == 3, plan
        assert "TEMP B-TREE" not in plan, plan
    else:
        plan = _plan(engine, LIVE_NUMBERS_PG, ("orders", 5, 500, 1000) * 3 + (1000,))
        assert plan.count("Index Only Scan using ix_sync_state_resource_status") == 3, plan
        assert plan.count("Limit") == 4, plan  # each status's range stops at a page


def test_the_keys_without_a_number_are_found_by_the_status_index(engine: sa.Engine) -> None:
    """Not by walking the resource's primary key range (the planners know the table's size)."""
    with StateStore(engine) as store:
        store.mark_synced("orders", [Outcome(str(n), str(n), "fp") for n in range(20_000)])
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    plan = _plan(engine, LIVE_UNNUMBERED, ("orders", "", 1000))
    assert "ix_sync_state_resource_status" in plan, plan
