"""What an incremental cycle's reads cost the shop's PostgreSQL server.

An incremental cycle's reads have parameters (the rows changed since a mark, a chunk of keys)
and read a few rows each. Two things the server did for them cost more than the reads: a key
list cast from its text for every row a Filter tests, and JIT compilation planned from the
cost of the whole table. Each is asked of the server itself (EXPLAIN, current_setting). The
mapping check before every `sync` probes the user's SQL and the guests' query without JIT too.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.mapping.labels import expression_label
from cdc_sync.mapping.loader import parse_mapping
from cdc_sync.source import ShopSource, connect_shop
from cdc_sync.source.plan import plan_resource
from cdc_sync.source.query import child_select, existing_select
from cdc_sync.source.reflect import ShopSchema

T0 = datetime(2024, 1, 1, 12, 0, 0)
JIT = expression_label("name")  # the label of the field's SQL expression in a source row
# What the server was told for a read: JIT compilation, and parallel workers per Gather.
SETTINGS = "current_setting('jit') || '/' || current_setting('max_parallel_workers_per_gather')"

MAPPING = f"""
    categories:
      table: cats
      cursor: changed
      fields:
        id: id
        name: {{expression: "{SETTINGS}"}}
"""
LOADED = parse_mapping(textwrap.dedent(MAPPING), Path("mappings.yaml"))


@pytest.fixture
def shop(pg_url: str) -> Iterator[sa.Engine]:
    """The read-only engine on a shop of 500 categories, all changed at T0."""
    writer = sa.create_engine(pg_url)
    cats = sa.Table("cats", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("changed", sa.DateTime))
    cats.create(writer)
    with writer.begin() as conn:
        conn.execute(cats.insert(), [{"id": i, "changed": T0} for i in range(1, 501)])
    writer.dispose()
    engine = connect_shop(pg_url)
    try:
        yield engine
    finally:
        engine.dispose()


def source_of(shop: sa.Engine) -> ShopSource:
    return ShopSource(shop, LOADED)


def test_a_key_list_is_one_constant_to_the_planner_not_parsed_again_per_row(
        shop: sa.Engine) -> None:
    """400 of 500 keys: a sequential scan tests each row against the list. Cast from its text
    (array_in is only stable), the list was parsed again for every row, 36 ms where the
    constant takes 0.4 (the delete guard's sample of categories, every incremental cycle)."""
    spec = LOADED.spec.categories
    assert spec is not None
    plan, problems = plan_resource(ShopSchema(shop), LOADED, "categories", spec)
    assert plan is not None, problems
    keys = [str(i) for i in range(1, 401)]
    compiled = existing_select(plan, keys, "postgresql").compile(dialect=shop.dialect)
    with shop.connect() as conn:
        for scan in ("indexscan", "bitmapscan", "indexonlyscan"):
            conn.exec_driver_sql(f"SET LOCAL enable_{scan} = off")
        explained = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
        plan_text = "\n".join(row[0] for row in explained)
    assert "Seq Scan on cats" in plan_text
    assert re.search(r"= ANY \('\{1,2,3,[0-9,]+\}'::bigint\[\]\)", plan_text), plan_text
    found = source_of(shop).existing_keys(Resource.CATEGORIES, ["7", "400", "501", "x"])
    assert found == {"7", "400"}


def test_reads_with_parameters_run_without_jit_or_parallel_workers_full_reads_as_configured(
        shop: sa.Engine) -> None:
    source = source_of(shop)
    with shop.connect() as conn:
        server = conn.execute(sa.text(f"SELECT {SETTINGS}")).scalar_one()
    since = [r.values[JIT] for r in source.rows(Resource.CATEGORIES, since=T0)]
    keyed = [r.values[JIT] for r in source.rows(Resource.CATEGORIES, keys=["1", "2"])]
    full = {r.values[JIT] for r in source.rows(Resource.CATEGORIES)}
    assert set(since) == set(keyed) == {"off/0"}
    assert len(since) == 500
    assert len(keyed) == 2
    assert full == {server}
    assert server != "off/0"  # else this test could not fail


def test_the_checks_probes_run_without_jit(shop: sa.Engine) -> None:
    """The mapping check runs the user's SQL and the guests' query with LIMIT 0 before every
    `cdc-sync sync`; PostgreSQL planned JIT for the guests' probe from the whole query's cost
    (50-80 ms of the shop's CPU at 1M orders, for no row). Asked of the server in each probe's
    own transaction."""
    seen: list[str] = []

    def after(_conn: object, cursor: Any, statement: str, *_rest: object) -> None:
        if statement.rstrip().endswith("LIMIT %(param_1)s::INTEGER"):
            setting = cursor.connection.execute("SELECT current_setting('jit')").fetchone()
            seen.append(setting[0])

    with shop.connect() as conn:
        server = conn.execute(sa.text("SELECT current_setting('jit')")).scalar_one()
    mapping = parse_mapping(textwrap.dedent(MAPPING) + '  where: "cats.id > 0"\n',
                            Path("mappings.yaml"))
    sa.event.listen(shop, "after_cursor_execute", after)
    try:
        assert ShopSource(shop, mapping).check() == []
    finally:
        sa.event.remove(shop, "after_cursor_execute", after)
    assert server == "on"  # else this test could not fail
    assert seen  # the probes were seen
    assert set(seen) == {"off"}


CHILD_MAPPING = """
    orders:
      table: ords
      cursor: changed
      fields:
        id: id
        createdAt: changed
        amount: {const: 1}
      children:
        coupons:
          table: cpns
          parent_key: order_id
          value: code
"""


def test_a_since_read_of_a_child_probes_its_index_for_the_changed_parents_only(
        pg_url: str) -> None:
    """20k orders, a coupon on every tenth, 500 changed: the EXISTS semi-join was a hash join
    over every coupon (the planner's cost of 500 index probes above a 2k-row scan; 100k
    coupons read for 104 at 1M orders). The changed parents' keys as an array: the coupons'
    index probed for them only, and the same rows as the semi-join."""
    writer = sa.create_engine(pg_url)
    meta = sa.MetaData()
    ords = sa.Table("ords", meta, sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("changed", sa.DateTime, index=True))
    cpns = sa.Table("cpns", meta, sa.Column("order_id", sa.Integer, primary_key=True),
                    sa.Column("code", sa.String(20), primary_key=True))
    meta.create_all(writer)
    later = T0.replace(year=2025)
    with writer.begin() as conn:
        conn.execute(ords.insert(), [{"id": i, "changed": later if i % 40 == 0 else T0}
                                     for i in range(1, 20_001)])
        conn.execute(cpns.insert(), [{"order_id": i, "code": f"C{i}"}
                                     for i in range(10, 20_001, 10)])
    with writer.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE ords, cpns")
    writer.dispose()
    loaded = parse_mapping(textwrap.dedent(CHILD_MAPPING), Path("mappings.yaml"))
    shop = connect_shop(pg_url)
    try:
        spec = loaded.spec.orders
        assert spec is not None
        plan, problems = plan_resource(ShopSchema(shop), loaded, "orders", spec)
        assert plan is not None, problems
        since = T0.replace(month=6)
        compiled = child_select(plan, plan.children["coupons"], "postgresql", since=since).compile(
            dialect=shop.dialect)
        with shop.connect() as conn:
            explained = conn.exec_driver_sql(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}", compiled.params).scalar_one()
        read = _rows_read(explained[0]["Plan"], "cpns")
        assert read == 500, explained  # the changed (every fortieth) orders each have one
        records = {r.key: r.children["coupons"] for r in ShopSource(shop, loaded).rows(
            Resource.ORDERS, since=since)}
    finally:
        shop.dispose()
    assert len(records) == 500
    assert records == {str(i): [{"code": f"C{i}"}] for i in range(40, 20_001, 40)}


def _rows_read(node: dict[str, Any], table: str) -> int:
    """Rows the plan's scans of `table` read (those returned and those a filter removed)."""
    own = 0
    if node.get("Relation Name") == table:
        loops = node.get("Actual Loops", 1)
        own = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * loops
    return own + sum(_rows_read(child, table) for child in node.get("Plans", []))
