"""Streaming records from a shop: children merged by key, composite keys, query sources,
joins, incremental reads. Every test runs on SQLite, PostgreSQL and MariaDB (shop_url)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.errors import MappingError, SourceError
from cdc_sync.mapping.loader import LoadedMapping, parse_mapping
from cdc_sync.source import ShopSource, connect_shop
from cdc_sync.source.driver import driver_statement
from cdc_sync.source.keys import KeySpan
from cdc_sync.source.stream import stream
from helpers.statements import Statements

T0 = datetime(2024, 1, 1, 12, 0, 0)
T1 = datetime(2024, 2, 1, 12, 0, 0)


def mapping(text: str) -> LoadedMapping:
    return parse_mapping(textwrap.dedent(text), Path("mappings.yaml"))


@pytest.fixture
def shop(shop_url: str) -> Iterator[sa.Engine]:
    """A writable engine on a fresh shop database with a few small tables."""
    engine = sa.create_engine(shop_url)
    meta = sa.MetaData()
    items = sa.Table("items", meta, sa.Column("code", sa.String(20), primary_key=True),
                     sa.Column("title", sa.String(50)), sa.Column("price", sa.Numeric(8, 2)),
                     sa.Column("brand_id", sa.Integer), sa.Column("changed", sa.DateTime))
    tags = sa.Table("item_tags", meta, sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("item_code", sa.String(20)), sa.Column("tag", sa.String(20)))
    brands = sa.Table("brands", meta, sa.Column("id", sa.Integer, primary_key=True),
                      sa.Column("name", sa.String(50)))
    stock = sa.Table("stock", meta, sa.Column("shop", sa.Integer, primary_key=True),
                     sa.Column("sku", sa.String(20), primary_key=True),
                     sa.Column("label", sa.String(50)))
    stock_notes = sa.Table("stock_notes", meta, sa.Column("id", sa.Integer, primary_key=True),
                           sa.Column("shop", sa.Integer), sa.Column("sku", sa.String(20)),
                           sa.Column("note", sa.String(50)))
    meta.create_all(engine)
    with engine.begin() as conn:
        # Mixed-case codes: binary order puts 'B' before 'a'; a case-insensitive ORDER BY
        # (MariaDB's default collation) would interleave them and break the merge.
        conn.execute(items.insert(), [
            {"code": c, "title": f"Item {c}", "price": p, "brand_id": b, "changed": t}
            for c, p, b, t in [("a", 1, 1, T0), ("B", 2, 2, T1), ("c", 3, None, T0),
                               ("D", 4, 1, T1), ("ab", 5, 2, T0)]
        ])
        conn.execute(tags.insert(), [
            {"id": i, "item_code": code, "tag": tag} for i, (code, tag) in enumerate(
                [("D", "x"), ("a", "z"), ("a", "y"), ("B", "q"), ("zz-orphan", "lost"),
                 ("ab", "lower")], 1)
        ])
        conn.execute(brands.insert(), [{"id": 1, "name": "Acme"}, {"id": 2, "name": "Bolt"}])
        conn.execute(stock.insert(), [
            {"shop": s, "sku": k, "label": f"{s}/{k}"}
            for s, k in [(1, "x"), (1, "Y"), (2, "x"), (10, "a")]
        ])
        conn.execute(stock_notes.insert(), [
            {"id": 1, "shop": 2, "sku": "x", "note": "n2x"}, {"id": 2, "shop": 1, "sku": "x",
                                                             "note": "n1x"},
            {"id": 3, "shop": 10, "sku": "a", "note": "n10a"}, {"id": 4, "shop": 1, "sku": "Y",
                                                                "note": "n1Y"},
            {"id": 5, "shop": 2, "sku": "Y", "note": "no such parent"},
        ])
    yield engine
    engine.dispose()


ITEMS = """
    products:
      table: items
      cursor: changed
      fields:
        id: code
        name: title
        price: price
      children:
        categories:
          table: item_tags
          parent_key: item_code
          value: tag
          order_by: tag
"""

# Categories keyed by two columns (a number and a text), with a child keyed the same way.
STOCK = """
    categories:
      table: stock
      key: [shop, sku]
      fields:
        id: label
        name: label
      children:
        notes:
          table: stock_notes
          parent_key: [shop, sku]
          value: note
"""


def read(engine: sa.Engine, text: str, resource: Resource, **options: Any) -> dict[str, Any]:
    read_only = connect_shop(engine.url)
    try:
        return {r.key: r.payload for r in ShopSource(read_only, mapping(text)).records(
            resource, **options)}
    finally:
        read_only.dispose()


def test_children_merge_into_their_parents_with_mixed_case_string_keys(shop: sa.Engine) -> None:
    records = read(shop, ITEMS, Resource.PRODUCTS)
    assert list(records) == ["B", "D", "a", "ab", "c"]  # binary (code point) order
    assert records["a"]["categories"] == ["y", "z"]
    assert records["B"]["categories"] == ["q"]
    assert records["ab"]["categories"] == ["lower"]
    assert records["c"] == {"id": "c", "name": "Item c", "price": 3, "categories": []}


def test_composite_keys_key_records_by_json_list_and_merge_children(shop: sa.Engine) -> None:
    records = read(shop, STOCK, Resource.CATEGORIES)
    # Numbers sort as numbers (2 before 10), text in binary order ('Y' before 'x').
    assert list(records) == ['["1","Y"]', '["1","x"]', '["2","x"]', '["10","a"]']
    assert records['["1","x"]']["notes"] == ["n1x"]
    assert records['["2","x"]']["notes"] == ["n2x"]
    assert records['["10","a"]']["notes"] == ["n10a"]


def _slices(engine: sa.Engine, text: str, resource: Resource, size: int) -> list[list[str]]:
    """Key-range slices of `size` keys walked from the start, as the reconciliation reads them:
    the keys each slice read (its children are checked by the callers)."""
    read_only = connect_shop(engine.url)
    try:
        source = ShopSource(read_only, mapping(text))
        found: list[list[str]] = []
        after: str | None = None
        while True:
            upto = source.span_end(resource, after, size)
            span = KeySpan(after=after, upto=upto)
            found.append([r.key for r in source.records(resource, span=span)])
            if upto is None:
                return found
            assert found[-1][-1] == upto
            after = upto
    finally:
        read_only.dispose()


def test_key_range_slices_of_string_keys_cover_every_key_once_in_binary_order(
    shop: sa.Engine,
) -> None:
    assert _slices(shop, ITEMS, Resource.PRODUCTS, 2) == [["B", "D"], ["a", "ab"], ["c"]]
    read_only = connect_shop(shop.url)
    try:
        source = ShopSource(read_only, mapping(ITEMS))
        middle = source.records(Resource.PRODUCTS, span=KeySpan(after="D", upto="ab"))
        assert {r.key: r.payload["categories"] for r in middle} == {
            "a": ["y", "z"], "ab": ["lower"]}
    finally:
        read_only.dispose()


def _bound(seen: Statements, wanted: Callable[[str], bool]) -> list[int]:
    """How many parameters each statement `wanted` picks was sent with, in the order sent."""
    return [len(sent.parameters or ()) for sent in seen.statements if wanted(sent.statement)]


def _distinct(sql: str) -> bool:
    return sql.lstrip().startswith("SELECT DISTINCT")  # the keys' reads, not the reflection


def test_a_slice_of_numeric_keys_is_read_as_a_statement_without_parameters(
    shop: sa.Engine,
) -> None:
    """Numeric span bounds are written into the SQL, so a reconciliation slice is read like
    a full read: straight from the driver on PostgreSQL and MariaDB, with no parameter to bind."""
    text = """
        categories:
          table: brands
          fields: {id: id, name: name}
    """
    engine = connect_shop(shop.url)
    source = ShopSource(engine, mapping(text))
    try:
        spans = [KeySpan(after="1", upto="2"), KeySpan(after="-3"), KeySpan(upto="1")]
        with Statements(engine) as seen:
            found = [[r.key for r in source.records(Resource.CATEGORIES, span=s)]
                     for s in spans]
    finally:
        engine.dispose()
    assert found == [["2"], ["1", "2"], ["1"]]
    # The reads, not the reflection.
    assert _bound(seen, lambda sql: "brands.name" in sql) == [0, 0, 0]


def test_key_range_slices_of_composite_keys_compare_as_rows(shop: sa.Engine) -> None:
    assert _slices(shop, STOCK, Resource.CATEGORIES, 3) == [
        ['["1","Y"]', '["1","x"]', '["2","x"]'], ['["10","a"]']]
    assert _slices(shop, STOCK, Resource.CATEGORIES, 1) == [
        ['["1","Y"]'], ['["1","x"]'], ['["2","x"]'], ['["10","a"]'], []]
    records = read(shop, STOCK, Resource.CATEGORIES,
                   span=KeySpan(after='["1","Y"]', upto='["2","x"]'))
    # The orphan note of (2, "Y") sorts inside the range but has no parent: not merged.
    assert records == {'["1","x"]': {"id": "1/x", "name": "1/x", "notes": ["n1x"]},
                       '["2","x"]': {"id": "2/x", "name": "2/x", "notes": ["n2x"]}}


def test_query_sources_and_query_children_are_wrapped_as_subqueries(shop: sa.Engine) -> None:
    text = """
        products:
          query: SELECT code, UPPER(title) AS loud, price FROM items WHERE price < 5
          key: code
          fields:
            id: code
            name: loud
            price: price
          children:
            categories:
              query: SELECT item_code, tag FROM item_tags WHERE tag <> 'z'
              parent_key: item_code
              value: tag
    """
    records = read(shop, text, Resource.PRODUCTS)
    assert list(records) == ["B", "D", "a", "c"]
    assert records["a"]["name"] == "ITEM A"
    assert records["a"]["categories"] == ["y"]


def test_joined_columns_and_expressions_are_read_under_their_labels(shop: sa.Engine) -> None:
    text = """
        products:
          table: items
          joins:
            - table: brands
              alias: b
              on: {brand_id: id}
          fields:
            id: code
            name:
              template: "{b.name} {title}"
            price:
              expression: price * 2
            sku: b.name
    """
    records = read(shop, text, Resource.PRODUCTS)
    assert records["a"]["name"] == "Acme Item a"
    assert records["a"]["sku"] == "Acme"
    assert records["a"]["price"] == 2
    assert "name" not in records["c"]
    assert "sku" not in records["c"]


def test_since_reads_only_changed_rows_and_their_children(shop: sa.Engine) -> None:
    records = read(shop, ITEMS, Resource.PRODUCTS, since=datetime(2024, 1, 15))
    assert records == {
        "B": {"id": "B", "name": "Item B", "price": 2, "categories": ["q"]},
        "D": {"id": "D", "name": "Item D", "price": 4, "categories": ["x"]},
    }


def test_high_water_is_the_largest_cursor_read_from_the_index_end(shop_url: str) -> None:
    writer = sa.create_engine(shop_url)
    events = sa.Table("events", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                      sa.Column("changed", sa.DateTime, index=True))
    events.create(writer)
    with writer.begin() as conn:
        # A row without a cursor value (NULLs sort first in PostgreSQL's descending order).
        conn.execute(events.insert(), [{"id": 1000, "changed": None}, *(
            {"id": i, "changed": T0.replace(minute=i % 60, second=i // 60)}
            for i in range(1, 301))])
    writer.dispose()
    shop = connect_shop(shop_url)
    source = ShopSource(shop, mapping("""
    products:
      table: events
      cursor: changed
      fields: {id: id, name: {const: event}, price: {const: 1}}
"""))
    try:
        assert source.cursor_high_water(Resource.PRODUCTS) == T0.replace(minute=59, second=4)
        if shop_url.startswith("mysql"):
            # MariaDB ran MAX(changed) ... WHERE id IS NOT NULL as a scan of the whole index.
            reads = _handler_reads(shop, lambda: source.cursor_high_water(Resource.PRODUCTS))
            assert reads < 10, reads
    finally:
        shop.dispose()


def _handler_reads(shop: sa.Engine, action: Callable[[], object]) -> int:
    """Rows MariaDB's handlers read while `action` ran on the pool's one session."""
    def total() -> int:
        with shop.connect() as conn:
            rows = conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Handler_read%%'")
            return sum(int(value) for _, value in rows)
    overhead = -total() + total()  # what reading the counters reads itself
    before = total()
    action()
    return total() - before - overhead


def test_keys_restricts_a_read_to_those_records(shop: sa.Engine) -> None:
    records = read(shop, ITEMS, Resource.PRODUCTS, keys=["a", "c", "nope"])
    assert list(records) == ["a", "c"]
    assert records["a"]["categories"] == ["y", "z"]


def test_existing_keys_and_high_water_answer_in_one_query_each(shop: sa.Engine) -> None:
    engine = connect_shop(shop.url)
    source = ShopSource(engine, mapping(ITEMS + """
    categories:
      table: stock
      key: [shop, sku]
      fields: {id: label, name: label}
"""))
    try:
        assert source.existing_keys(Resource.PRODUCTS, ["a", "A", "zz", "B"]) == {"a", "B"}
        found = source.existing_keys(Resource.CATEGORIES,
                                     ['["1","x"]', '["1","X"]', '["2","x"]', "garbage"])
        assert found == {'["1","x"]', '["2","x"]'}
        assert source.cursor_high_water(Resource.PRODUCTS) == T1
        assert source.cursor_high_water(Resource.CATEGORIES) is None
        assert source.existing_keys(Resource.ORDERS, ["1"]) == set()  # not mapped
    finally:
        engine.dispose()


def test_an_integer_key_beyond_the_column_is_not_found_not_an_error(shop: sa.Engine) -> None:
    """A key no INTEGER column can hold (a typo given to `preview --key`, a key from before a
    column was narrowed) finds nothing, on every backend: the key list must not be cast to the
    column's own width, which PostgreSQL refuses ("out of range for type integer")."""
    engine = connect_shop(shop.url)
    source = ShopSource(engine, mapping(ITEMS + """
    categories:
      table: brands
      fields: {id: id, name: name}
"""))
    beyond = ["99999999999", "-99999999999", "99999999999999999999999"]
    try:
        assert source.existing_keys(Resource.CATEGORIES, ["1", *beyond, "x"]) == {"1"}
        found = [r.key for r in source.records(Resource.CATEGORIES, keys=["2", *beyond])]
        assert found == ["2"]
    finally:
        engine.dispose()


def test_existing_keys_of_a_thousand_keys_bind_them_as_one_array_on_postgresql(
    shop: sa.Engine,
) -> None:
    """The deletion walk of a reconciliation slice asks 1,000 keys a query: on PostgreSQL one
    array parameter, not a placeholder per key (the cost was the client's, ~8 ms a query).
    A key longer than the column must not be cut to one that exists (no VARCHAR(20)[])."""
    engine = connect_shop(shop.url)
    source = ShopSource(engine, mapping(ITEMS))
    try:
        asked = ["a", "ab", "c" + "x" * 30, "a" * 19 + "b" * 5, *(f"n{i}" for i in range(997))]
        with Statements(engine) as seen:
            assert source.existing_keys(Resource.PRODUCTS, asked) == {"a", "ab"}
            assert source.existing_keys(Resource.PRODUCTS, ["B", "D", "zz"]) == {"B", "D"}
    finally:
        engine.dispose()
    bound = _bound(seen, _distinct)
    assert len(bound) == 2
    if shop.dialect.name == "postgresql":
        assert bound == [1, 1]


def test_existing_integer_keys_are_asked_without_a_parameter_per_key(shop: sa.Engine) -> None:
    """PostgreSQL: one array parameter; MariaDB: the integers written into the IN list (no
    parameter for PyMySQL to escape); keys that are no integer cannot exist."""
    engine = connect_shop(shop.url)
    source = ShopSource(engine, mapping("""
        categories:
          table: brands
          fields: {id: id, name: name}
    """))
    try:
        asked = ["2", "x", "1.5", "-1", "1 OR 1=1", *(str(n) for n in range(3, 1000))]
        with Statements(engine) as seen:
            assert source.existing_keys(Resource.CATEGORIES, asked) == {"2"}
    finally:
        engine.dispose()
    bound = _bound(seen, _distinct)
    assert len(bound) == 1
    if shop.dialect.name == "postgresql":
        assert bound == [1]
    if shop.dialect.name == "mysql":
        assert bound == [0]


def test_existing_keys_of_many_pages_are_asked_on_one_connection(shop: sa.Engine) -> None:
    """A deletion walk's pages (a slice checks ~70 of 1,000 keys at 1M orders) share one
    connection: a checkout per page cost the pool's ping each."""
    engine = connect_shop(shop.url)
    source = ShopSource(engine, mapping(ITEMS))
    source.existing_keys(Resource.PRODUCTS, ["a"])  # the reflection's own connections first
    checkouts: list[object] = []
    sa.event.listen(engine, "checkout", lambda *args: checkouts.append(args))
    try:
        pages = [["a", "x"], ["B", "ab", "zz"], [], ["D"]]
        found = list(source.existing_in_pages(Resource.PRODUCTS, iter(pages)))
    finally:
        engine.dispose()
    assert found == [(["a", "x"], {"a"}), (["B", "ab", "zz"], {"B", "ab"}), ([], set()),
                     (["D"], {"D"})]
    assert len(checkouts) == 1


TAGS_AS_OPTIONS = """\
        options:
          table: item_tags
          parent_key: item_code
          fields: {id: id, name: tag, sku: tag, price: id}
          order_by: id
"""


def _most_checked_out(engine: sa.Engine, action: Callable[[], object]) -> tuple[int, int]:
    """(connections opened, most checked out at once) while `action` runs, as the shop
    engine's pool reports them."""
    opened, out, most = [0], [0], [0]

    def checkout(*_args: object) -> None:
        out[0] += 1
        most[0] = max(most[0], out[0])

    def checkin(*_args: object) -> None:
        out[0] -= 1

    listeners = {"connect": lambda *_args: opened.__setitem__(0, opened[0] + 1),
                 "checkout": checkout, "checkin": checkin}
    for name, listener in listeners.items():
        sa.event.listen(engine, name, listener)
    try:
        action()
    finally:
        for name, listener in listeners.items():
            sa.event.remove(engine, name, listener)
    return opened[0], most[0]


def test_an_incremental_read_and_its_children_take_one_connection(shop: sa.Engine) -> None:
    """The rows changed since the mark, and a chunk of keys, are read with their children one
    statement after the other on one pooled connection: streamed side by side they held one
    each, and a one-shot sync opened two connections inside its cycle (~5 ms each)."""
    engine = connect_shop(shop.url)
    try:
        # Two child collections: read side by side, they held a connection each.
        source = ShopSource(engine, mapping(ITEMS + TAGS_AS_OPTIONS))
        source.existing_keys(Resource.PRODUCTS, ["a"])  # reflection's connection first
        read: dict[str, list[str]] = {}
        narrowed: dict[str, dict[str, Any]] = {"since": {"since": datetime(2024, 1, 15)},
                                               "keys": {"keys": ["a", "D"]}}
        for what, options in narrowed.items():
            def keys_read(what: str = what, options: dict[str, Any] = options) -> None:
                read[what] = [r.key for r in source.records(Resource.PRODUCTS, **options)]
            assert _most_checked_out(engine, keys_read) == (0, 1), what
    finally:
        engine.dispose()
    assert read == {"since": ["B", "D"], "keys": ["D", "a"]}


@pytest.mark.parametrize("batch", [1, 2])
def test_an_incremental_read_gives_the_same_rows_read_ahead_or_streamed(
        shop: sa.Engine, batch: int) -> None:
    """Few changed rows (up to SMALL_SINCE_CHUNKS chunks: 5 rows in chunks of 2) are read
    ahead and their children after them; more (5 rows in chunks of 1) stream with their
    children side by side as before. Either way, the rows of a full read."""
    engine = connect_shop(shop.url)

    def rows(size: int, since: datetime | None) -> list[tuple[Any, ...]]:
        source = ShopSource(engine, mapping(ITEMS), batch_size=size)
        return [(r.key, tuple(r.raw), r.kids, r.digest)
                for r in source.rows(Resource.PRODUCTS, since=since)]

    try:
        every = rows(1000, None)
        assert rows(batch, T0) == rows(1000, T0) == every
        assert [r[0] for r in every] == ["B", "D", "a", "ab", "c"]
        tags = [[row[0] for row in r[2][0]] for r in every]
        assert tags == [["q"], ["x"], ["y", "z"], ["lower"], []]
    finally:
        engine.dispose()


def test_a_join_that_repeats_rows_gives_that_key_one_record_with_a_problem(
    shop: sa.Engine,
) -> None:
    text = """
        products:
          table: items
          joins:
            - table: item_tags
              alias: t
              on: {code: item_code}
          fields: {id: code, name: t.tag, price: price}
    """
    read_only = connect_shop(shop.url)
    try:
        records = list(ShopSource(read_only, mapping(text)).records(Resource.PRODUCTS))
    finally:
        read_only.dispose()
    keys = [r.key for r in records]
    assert keys.count("a") == 1  # the read goes on past the repeated key
    repeated = next(r for r in records if r.key == "a")
    assert any("duplicate key 'a': 2 source rows" in p for p in repeated.problems)
    assert all(not r.problems for r in records if r.key != "a")


def test_a_mapping_that_does_not_fit_fails_before_reading(shop: sa.Engine) -> None:
    text = ITEMS.replace("name: title", "name: titel")
    with pytest.raises(MappingError, match="did you mean 'title'"):
        read(shop, text, Resource.PRODUCTS)


@pytest.mark.filterwarnings("ignore:Previous unbuffered result:UserWarning")
def test_stopping_early_releases_the_connections(shop: sa.Engine) -> None:
    engine = connect_shop(shop.url)
    try:
        records = ShopSource(engine, mapping(ITEMS)).records(Resource.PRODUCTS)
        assert next(records).key == "B"
        records.close()  # type: ignore[attr-defined]
        assert isinstance(engine.pool, sa.pool.QueuePool)
        assert engine.pool.checkedout() == 0
    finally:
        engine.dispose()


def test_schema_qualified_tables_are_read_and_checked(pg_url: str) -> None:
    writer = sa.create_engine(pg_url)
    with writer.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA sales"))
        conn.execute(sa.text("CREATE TABLE sales.genres (id INT PRIMARY KEY, name TEXT)"))
        conn.execute(sa.text("INSERT INTO sales.genres VALUES (2, 'Jazz'), (1, 'Rock')"))
    writer.dispose()
    text = """
        categories:
          table: sales.genres
          fields: {id: id, name: name}
    """
    engine = connect_shop(pg_url)
    try:
        source = ShopSource(engine, mapping(text))
        assert source.check() == []
        assert [r.payload for r in source.records(Resource.CATEGORIES)] == [
            {"id": "1", "name": "Rock"}, {"id": "2", "name": "Jazz"}]
        wrong = ShopSource(engine, mapping(text.replace("sales.genres", "sales.genre")))
        assert "did you mean 'sales.genres'" in str(wrong.check())
        elsewhere = ShopSource(engine, mapping(text.replace("sales.genres", "nosuch.genres")))
        assert "'nosuch.genres' does not exist" in str(elsewhere.check())
    finally:
        engine.dispose()


def test_a_connection_lost_mid_stream_becomes_a_source_error(pg_url: str) -> None:
    writer = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with writer.connect() as conn:
        conn.execute(sa.text("CREATE TABLE genres (id INT PRIMARY KEY, name TEXT)"))
        # About 20 MB: more than the socket buffers hold, so the server is still sending
        # (PostgreSQL streams a full read without waiting to be asked for each batch).
        conn.execute(sa.text("INSERT INTO genres SELECT g, repeat('g', 200) || g "
                             "FROM generate_series(1, 100000) g"))
    engine = connect_shop(pg_url)
    try:
        source = ShopSource(engine, mapping("categories: {table: genres, fields: {id: id, "
                                            "name: name}}"), batch_size=5)
        records = source.records(Resource.CATEGORIES)
        assert next(records).key == "1"
        with writer.connect() as conn:
            conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        with pytest.raises(SourceError, match=r"reading categories from genres failed.*fix:"):
            list(records)
    finally:
        engine.dispose()
        writer.dispose()


# -- full reads straight from the driver (source/driver.py) ----------------------------------

_TYPED_COLUMNS = {
    "postgresql": "id INT PRIMARY KEY, doc JSONB, ratio DOUBLE PRECISION, pct REAL, "
                  "amount NUMERIC(10, 2), flag BOOLEAN, born DATE, at TIMESTAMPTZ, "
                  "token UUID, span INTERVAL, tags TEXT[], note TEXT",
    "mysql": "id INT PRIMARY KEY, doc JSON, ratio DOUBLE, pct FLOAT, amount DECIMAL(10, 2), "
             "flag TINYINT(1), born DATE, at DATETIME(6), kind ENUM('a', 'b'), bits BIT(8), "
             "kinds SET('x', 'y'), clock TIME, note TEXT",
}
_TYPED_ROWS = {
    "postgresql": "(1, '{\"a\": [1, 2.5]}', 0.1, 1.5, 10.40, true, '2024-02-29', "
                  "'2024-05-30 16:46:22.5+02', 'a8098c1a-f86e-11da-bd1a-00112444be1e', "
                  "'1 day 2 hours', '{x,y}', 'zoë 100%'), "
                  "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "mysql": "(1, '{\"a\": [1, 2.5]}', 0.1, 1.5, 10.40, 1, '2024-02-29', "
             "'2024-05-30 16:46:22.5', 'b', b'101', 'x,y', '26:00:01', 'zoë 100%'), "
             "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
}


def test_a_read_from_the_driver_gives_the_values_a_read_through_sqlalchemy_gives(
        shop_url: str) -> None:
    # Reads with and without parameters come from the driver, with the same rows and value
    # types as SQLAlchemy's result (its result processors apply: BIT and SET on MariaDB), so
    # records and marks do not depend on which read found them.
    backend = sa.make_url(shop_url).get_backend_name()
    if backend not in _TYPED_COLUMNS:
        pytest.skip("SQLite is read through SQLAlchemy only")
    full = _read_typed_both_ways(shop_url, shop_url)
    if backend == "mysql":  # values SQLAlchemy's result processors made (PyMySQL: b'\x05')
        assert (full[0][9], full[0][10]) == (5, {"x", "y"})
    else:
        assert full[0][1] == {"a": [1, 2.5]}


def test_mysqlclient_full_reads_come_from_the_driver_with_the_same_values(
        mysql_url: str) -> None:
    # mysqlclient (mysql+mysqldb://) reads a full read through its own unbuffered cursor as
    # PyMySQL does (half the CPU of a no-change cycle's reading: bench/README.md), with the
    # values SQLAlchemy's result would give.
    pytest.importorskip("MySQLdb", reason="mysqlclient is optional: pip install '.[mysqlclient]'")
    mysqldb_url = sa.make_url(mysql_url).set(drivername="mysql+mysqldb")
    full = _read_typed_both_ways(mysql_url, mysqldb_url.render_as_string(False))
    assert (full[0][9], full[0][10]) == (5, {"x", "y"})
    engine = connect_shop(mysqldb_url.render_as_string(False))
    try:
        statement = driver_statement(engine, sa.select(sa.literal_column("1")))
        assert statement is not None
        assert statement.sql == "SELECT 1"
    finally:
        engine.dispose()


def _read_typed_both_ways(writer_url: str, reader_url: str) -> list[Any]:
    """The typed table's rows read in full and by a statement with parameters (both from the
    driver), once asserted equal to those SQLAlchemy's result gives, value types included."""
    backend = sa.make_url(writer_url).get_backend_name()
    writer = sa.create_engine(writer_url)
    with writer.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE things ({_TYPED_COLUMNS[backend]})"))
        conn.execute(sa.text(f"INSERT INTO things VALUES {_TYPED_ROWS[backend]}"))
    writer.dispose()
    engine = connect_shop(reader_url)
    try:
        things = sa.Table("things", sa.MetaData(), autoload_with=engine)
        # A `%` in the user's SQL (a mapping's where) reaches the driver as SQLAlchemy escaped it.
        everything = sa.select(things).where(
            sa.text("note LIKE '%100%' OR note IS NULL")).order_by(things.c.id)
        keyed = everything.where(things.c.id > sa.bindparam("low", 0))
        full = list(stream(engine, everything, doing="reading things").rows)
        with_parameters = list(stream(engine, keyed, doing="reading things").rows)
        with engine.connect() as conn:
            through_sqlalchemy = [tuple(row) for row in conn.execute(keyed)]
    finally:
        engine.dispose()
    assert len(full) == 2
    assert all(type(row) is tuple for row in full + with_parameters)  # the driver's own rows
    assert full == with_parameters == through_sqlalchemy
    types = [[type(v) for v in row] for row in through_sqlalchemy]
    assert [[type(v) for v in row] for row in full] == types
    assert [[type(v) for v in row] for row in with_parameters] == types
    return full
