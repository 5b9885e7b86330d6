"""Row digests computed by the shop database (source/digests.py): every mapped value of a row,
its joins, children and aggregates changes its digest; a values read and a digest-only read
agree on an unchanged shop. PostgreSQL and MariaDB compute them; SQLite reads without."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.mapping.loader import parse_mapping
from cdc_sync.source import ShopSource, connect_shop
from cdc_sync.source.keys import KeySpan
from helpers.statements import Statements

MAPPING = """
    products:
      table: items
      joins:
        - {table: brands, alias: b, "on": {brand_id: id}}
      fields:
        id: code
        name: title
        sku: b.name
        price: {sum: stock.qty}
      children:
        categories:
          table: item_tags
          parent_key: item_code
          value: tag
          order_by: tag
        stock:
          table: item_stock
          parent_key: item_code
"""


@pytest.fixture(params=["postgresql", "mariadb"])
def shop(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """A writable engine on a fresh shop: items with a brand, tags and stock rows."""
    url = str(request.getfixturevalue({"postgresql": "pg_url",
                                       "mariadb": "mysql_url"}[request.param]))
    engine = sa.create_engine(url)
    _fill(engine)
    yield engine
    engine.dispose()


def _fill(engine: sa.Engine) -> None:
    meta = sa.MetaData()
    items = sa.Table("items", meta, sa.Column("code", sa.String(20), primary_key=True),
                     sa.Column("title", sa.String(50)), sa.Column("brand_id", sa.Integer))
    brands = sa.Table("brands", meta, sa.Column("id", sa.Integer, primary_key=True),
                      sa.Column("name", sa.String(50)))
    tags = sa.Table("item_tags", meta, sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("item_code", sa.String(20)), sa.Column("tag", sa.String(20)))
    stock = sa.Table("item_stock", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("item_code", sa.String(20)), sa.Column("qty", sa.Integer))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(items.insert(), [
            {"code": c, "title": f"Item {c}", "brand_id": b}
            for c, b in [("a", 1), ("B", 2), ("c", None), ("D", 1), ("ab", 2)]
        ])
        conn.execute(brands.insert(), [{"id": 1, "name": "Acme"}, {"id": 2, "name": "Bolt"}])
        conn.execute(tags.insert(), [
            {"id": i, "item_code": code, "tag": tag} for i, (code, tag) in enumerate(
                [("D", "x"), ("a", "z"), ("a", "y"), ("B", "q"), ("ab", "lower")], 1)
        ])
        conn.execute(stock.insert(), [
            {"id": i, "item_code": code, "qty": qty} for i, (code, qty) in enumerate(
                [("a", 3), ("a", 4), ("B", 1), ("D", None)], 1)
        ])


def _source(engine: sa.Engine, *, digests: bool = True) -> tuple[ShopSource, sa.Engine]:
    read_only = connect_shop(engine.url.render_as_string(hide_password=False))
    loaded = parse_mapping(textwrap.dedent(MAPPING), Path("mappings.yaml"))
    return ShopSource(read_only, loaded, digests=digests), read_only


def _both(engine: sa.Engine) -> dict[str, str | None]:
    """Each key's digest from a values read, checked equal to a digest-only read's."""
    source, read_only = _source(engine)
    try:
        from_values = {r.key: r.digest for r in source.rows(Resource.PRODUCTS)}
        alone = {r.key: r.digest for r in source.digests(Resource.PRODUCTS)}
        sliced = {r.key: r.digest for r in source.digests(Resource.PRODUCTS,
                                                           span=KeySpan(after="B"))}
    finally:
        read_only.dispose()
    assert from_values == alone
    assert sliced == {k: v for k, v in alone.items() if k > "B"}
    return from_values


def test_an_unchanged_shop_gives_the_same_digests_to_a_values_and_a_digest_only_read(
    shop: sa.Engine,
) -> None:
    digests = _both(shop)
    assert sorted(digests) == ["B", "D", "a", "ab", "c"]
    assert all(d is not None and len(d.split("|")) == 3 for d in digests.values())
    assert len(set(digests.values())) == len(digests)
    assert _both(shop) == digests


Change = Callable[[sa.Connection], object]


def _sql(text: str) -> Change:
    return lambda conn: conn.execute(sa.text(text))


CHANGES: list[tuple[str, Change, set[str]]] = [
    ("a parent column", _sql("UPDATE items SET title = 'Other' WHERE code = 'a'"), {"a"}),
    ("NULL to ''", _sql("UPDATE items SET title = NULL WHERE code = 'c'"), {"c"}),
    ("NULL to ''", _sql("UPDATE items SET title = '' WHERE code = 'c'"), {"c"}),
    ("'' to 'NULL'", _sql("UPDATE items SET title = 'NULL' WHERE code = 'c'"), {"c"}),
    ("a comma in a value", _sql("UPDATE items SET title = 'x,y' WHERE code = 'D'"), {"D"}),
    ("a joined column", _sql("UPDATE brands SET name = 'Zed' WHERE id = 2"), {"B", "ab"}),
    ("a child row edited", _sql("UPDATE item_tags SET tag = 'w' WHERE id = 2"), {"a"}),
    ("a child row added", _sql("INSERT INTO item_tags VALUES (9, 'c', 'new')"), {"c"}),
    ("a child row removed", _sql("DELETE FROM item_tags WHERE id = 4"), {"B"}),
    ("an aggregated value", _sql("UPDATE item_stock SET qty = 5 WHERE id = 2"), {"a"}),
    ("an aggregated row added", _sql("INSERT INTO item_stock VALUES (9, 'D', 2)"), {"D"}),
]


def test_a_change_in_any_mapped_value_changes_only_its_rows_digest(shop: sa.Engine) -> None:
    before = _both(shop)
    for what, change, keys in CHANGES:
        with shop.begin() as conn:
            change(conn)
        after = _both(shop)
        changed = {k for k in before if before[k] != after[k]}
        assert changed == keys, what
        before = after


def test_child_rows_in_another_order_change_the_digest(shop: sa.Engine) -> None:
    # The order of a parent's child rows is part of its record; the summed digest does not
    # see order, so what orders them (order_by) is in each row's md5.
    before = _both(shop)
    with shop.begin() as conn:
        conn.execute(sa.text("UPDATE item_tags SET tag = 'a' WHERE id = 2"))
    assert _both(shop)["a"] != before["a"]


def test_digests_off_reads_values_without_digests(shop: sa.Engine) -> None:
    source, read_only = _source(shop, digests=False)
    try:
        assert not source.digesting
        assert source.digest_readings(Resource.PRODUCTS) is None
        assert {r.digest for r in source.rows(Resource.PRODUCTS)} == {None}
    finally:
        read_only.dispose()


def test_sqlite_reads_without_digests(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    _fill(engine)
    source, read_only = _source(engine)
    try:
        assert not source.digesting
        assert source.digest_readings(Resource.PRODUCTS) is None
        rows = list(source.rows(Resource.PRODUCTS))
        assert len(rows) == 5
        assert {r.digest for r in rows} == {None}
    finally:
        read_only.dispose()
        engine.dispose()


def test_a_digest_column_is_kept_out_of_the_composed_records(shop: sa.Engine) -> None:
    source, read_only = _source(shop)
    plain, plain_engine = _source(shop, digests=False)
    try:
        assert ({r.key: r.payload for r in source.records(Resource.PRODUCTS)}
                == {r.key: r.payload for r in plain.records(Resource.PRODUCTS)})
    finally:
        read_only.dispose()
        plain_engine.dispose()


def test_columns_of_different_character_sets_and_collations_are_digested(
    mysql_url: str,
) -> None:
    """Old MySQL shops mix collations and character sets across (joined) tables; the digest
    hashes each value's bytes, so no collation has to agree with another's."""
    engine = sa.create_engine(mysql_url)
    try:
        _fill(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE items MODIFY title VARCHAR(50) CHARACTER SET "
                                 "utf8mb4 COLLATE utf8mb4_unicode_ci"))
            conn.execute(sa.text("ALTER TABLE brands MODIFY name VARCHAR(50) CHARACTER SET "
                                 "latin1 COLLATE latin1_swedish_ci"))
            conn.execute(sa.text("ALTER TABLE item_tags MODIFY tag VARCHAR(20) CHARACTER SET "
                                 "utf8mb4 COLLATE utf8mb4_general_ci"))
        before = _both(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE brands SET name = 'Åcme' WHERE id = 1"))
        after = _both(engine)
        assert {k for k in before if before[k] != after[k]} == {"a", "D"}
    finally:
        engine.dispose()


_GOODS = """
    products:
      table: goods
      fields:
        id: id
        name: title
        price: {sum: stock.qty}
      children:
        categories:
          table: goods_tags
          parent_key: goods_id
          value: tag
          order_by: tag
        stock:
          table: goods_stock
          parent_key: goods_id
"""
_TAGS_LAYOUTS = {
    # Rows keyed by their own id, found by parent through an index (order lines).
    "own key": "id INT PRIMARY KEY, goods_id INT, tag VARCHAR(20), INDEX ix_tags_goods (goods_id)",
    # Rows keyed by the parent key first (order coupons): stored in parent-key order.
    "parent key first": "goods_id INT, tag VARCHAR(20), PRIMARY KEY (goods_id, tag)",
}


@pytest.mark.parametrize("layout", list(_TAGS_LAYOUTS))
def test_mariadb_groups_a_whole_child_table_by_sorting_a_scan_of_it(mysql_url: str,
                                                                    layout: str) -> None:
    """A digest-only read groups each child table by its parent key (a collection's count
    and sum, an aggregate's md5). Through the parent-key index MariaDB fetches every row from
    the clustered index, one lookup each (order lines at 1M orders: 4.9 s of the server's
    CPU); a scan sorted by the parent key costs a third less (3.3 s). A table stored in
    parent-key order is read in that order, and a slice (a key range) keeps the index."""
    engine = sa.create_engine(mysql_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE goods (id INT PRIMARY KEY, title VARCHAR(20))"))
            conn.execute(sa.text(f"CREATE TABLE goods_tags ({_TAGS_LAYOUTS[layout]})"))
            conn.execute(sa.text("CREATE TABLE goods_stock (id INT PRIMARY KEY, goods_id INT, "
                                 "qty INT, INDEX ix_stock_goods (goods_id))"))
            conn.execute(sa.text("INSERT INTO goods VALUES (1, 'a'), (2, 'b'), (3, 'c')"))
            columns = "goods_id, tag" if layout == "parent key first" else "id, goods_id, tag"
            values = ", ".join(f"({i}, {g}, 't{i}')" if layout == "own key" else f"({g}, 't{i}')"
                               for i, g in enumerate([1, 1, 2, 3, 3, 3], 1))
            conn.execute(sa.text(f"INSERT INTO goods_tags ({columns}) VALUES {values}"))
            conn.execute(sa.text("INSERT INTO goods_stock VALUES (1, 1, 5), (2, 2, 1), (3, 2, 2)"))
        whole = _grouped_plans(engine, None)
        sliced = _grouped_plans(engine, KeySpan(after="1"))
    finally:
        engine.dispose()
    for table in ("goods_stock", *(["goods_tags"] if layout == "own key" else [])):
        assert (whole[table]["type"], whole[table]["key"]) == ("ALL", None), whole
        assert "Using filesort" in whole[table]["Extra"], whole
        assert "temporary" not in whole[table]["Extra"], whole
    if layout == "parent key first":
        assert whole["goods_tags"]["key"] == "PRIMARY", whole
        assert "filesort" not in whole["goods_tags"]["Extra"], whole
    assert sliced["goods_tags"]["key"] in ("ix_tags_goods", "PRIMARY"), sliced
    assert sliced["goods_stock"]["key"] == "ix_stock_goods", sliced


def _grouped_plans(engine: sa.Engine, span: KeySpan | None) -> dict[str, Any]:
    """EXPLAIN of each grouped child statement a digest-only read of goods sent, by table."""
    read_only = connect_shop(engine.url.render_as_string(hide_password=False))
    source = ShopSource(read_only, parse_mapping(textwrap.dedent(_GOODS),
                                                 Path("mappings.yaml")))
    try:
        with Statements(read_only) as sent:
            assert len(list(source.digests(Resource.PRODUCTS, span=span))) == (
                3 if span is None else 2)
    finally:
        read_only.dispose()
    with engine.connect() as conn:
        return {
            table: conn.exec_driver_sql(f"EXPLAIN {sql}", params).mappings().one()
            for sql, params, *_ in sent.statements if "GROUP BY" in sql
            for table in ("goods_tags", "goods_stock") if f"FROM {table}" in sql
        }
