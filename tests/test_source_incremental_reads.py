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
from cdc_sync.source.query import existing_select
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
