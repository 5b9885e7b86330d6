"""check's repeated-join test looks only at the child rows the child reads (its `where`).

Variations are posts beside the products, and a variable product keeps several `_price` rows:
a child reading only the variations must not be blamed for the products' repeats.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from cdc_sync.mapping.loader import parse_mapping
from cdc_sync.source import ShopSource, connect_shop

MAPPING = """
version: 1
products:
  table: posts
  where: kind = 'product'
  fields: {{id: id, name: title, price: {{const: 1}}}}
  children:
    options:
      table: posts
      {where}
      parent_key: parent
      joins: [{{table: meta, alias: price, on: {{id: post_id, meta_key: {{const: _price}}}}}}]
      fields: {{id: id, name: title, price: price.value}}
"""


def _problems(url: str, where: str) -> list[str]:
    source = ShopSource(connect_shop(url), parse_mapping(MAPPING.format(where=where),
                                                        Path("m.yaml")))
    return [str(p) for p in source.check()]


def test_repeats_outside_the_child_s_where_are_not_problems(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE posts (id INTEGER PRIMARY KEY, kind TEXT, "
                             "title TEXT, parent INTEGER)"))
        conn.execute(sa.text("CREATE TABLE meta (id INTEGER PRIMARY KEY, post_id INTEGER, "
                             "meta_key TEXT, value TEXT)"))
        conn.execute(sa.text("INSERT INTO posts VALUES (1, 'product', 'Shirt', 0), "
                             "(2, 'variation', 'Shirt S', 1), (3, 'variation', 'Shirt M', 1)"))
        # The variable product has a _price row per variation price; each variation has one.
        conn.execute(sa.text("INSERT INTO meta (post_id, meta_key, value) VALUES "
                             "(1, '_price', '10'), (1, '_price', '12'), "
                             "(2, '_price', '10'), (3, '_price', '12')"))
    engine.dispose()
    assert _problems(sqlite_url, "where: kind = 'variation'") == []
    unfiltered = _problems(sqlite_url, "")  # then the product itself is an option, twice
    assert any("comes out 2 times" in p for p in unfiltered), unfiltered
