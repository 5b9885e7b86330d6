"""Constant join conditions (a join's `on` entry compares the joined table's column with a
constant, as PrestaShop's product_lang by id_lang): loader errors, check problems, the bound
SQL, and records through the sandbox."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.mapping.loader import parse_mapping
from cdc_sync.mapping.related import JoinConst
from cdc_sync.source import ShopSource, connect_shop
from cdc_sync.source.plan import plan_resource
from cdc_sync.source.query import rows_select
from cdc_sync.source.reflect import ShopSchema
from helpers.backends import COMBINATIONS
from helpers.problems import check, find, loader_problems
from helpers.product_texts import product_texts, texts_added, texts_meta
from helpers.world import World
from helpers.worlds import world_fixture

FILE = Path("mappings.yaml")

world = world_fixture(COMBINATIONS, prepare=texts_added)


def _joined_texts(on: dict[str, Any]) -> Any:
    def edit(data: dict[str, Any]) -> None:
        data["products"]["joins"] = [{"table": "product_texts", "alias": "t", "on": on}]
        data["products"]["fields"]["name"] = "t.title"

    return edit


def test_a_constant_in_on_picks_the_joined_row_end_to_end(world: World) -> None:
    world.edit_mapping(_joined_texts({"id": "product_id", "lang_id": {"const": 2}}))
    report = world.sync()
    assert report.ok, report
    assert [world.held("products", str(pid))["name"] for pid in (1, 2, 3)] == [
        "de 1", "de 2", "de 3"]
    # A text constant against a text column
    world.edit_mapping(_joined_texts({"id": "product_id", "lang_code": {"const": "en"}}))
    assert world.sync().ok
    assert world.held("products", "1")["name"] == "en 1"
    # and a number against a text column (bound as text)
    with world.shop.begin() as conn:
        conn.execute(product_texts.update().where(product_texts.c.lang_id == 2)
                     .values(lang_code="7"))
    world.edit_mapping(_joined_texts({"id": "product_id", "lang_code": {"const": 7}}))
    assert world.sync().ok
    assert world.held("products", "1")["name"] == "de 1"


def test_a_constant_is_bound_as_a_parameter_never_pasted(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    texts_meta.create_all(engine)
    hostile = "de' OR '1'='1"
    loaded = parse_mapping(textwrap.dedent(f"""
        products:
          table: product_texts
          key: [product_id, lang_id]
          joins:
            - table: product_texts
              alias: other
              on: {{product_id: product_id, lang_code: {{const: "{hostile}"}}}}
          fields: {{id: product_id, name: other.title}}
    """), FILE)
    spec = loaded.spec.products
    assert spec is not None
    plan, problems = plan_resource(ShopSchema(engine), loaded, "products", spec)
    assert plan is not None, problems
    compiled = rows_select(plan, "sqlite").compile(engine)
    assert hostile not in str(compiled)
    assert hostile in compiled.params.values()
    engine.dispose()


def test_on_entries_load_as_pairs_and_constants() -> None:
    loaded = parse_mapping(textwrap.dedent("""
        products:
          table: p
          joins:
            - table: product_lang
              alias: pl
              on: {id_product: id_product, id_lang: {const: 1}, iso: {const: de}, on: {const: true}}
          fields: {id: id, name: pl.name}
    """), FILE)
    assert loaded.spec.products is not None
    join = loaded.spec.products.joins[0]
    assert join.pairs() == {"id_product": "id_product"}
    assert join.constants() == {"id_lang": 1, "iso": "de", "on": True}
    assert join.on["id_lang"] == JoinConst(const=1)


@pytest.mark.parametrize("entry", ["1", "{const: [1, 2]}", "{const: 1, also: 2}", "{value: 1}"])
def test_a_malformed_on_entry_says_how_to_write_a_constant(entry: str) -> None:
    problems = loader_problems(f"""
        products:
          table: p
          joins:
            - table: product_lang
              alias: pl
              on:
                id_product: id_product
                id_lang: {entry}
          fields: {{id: id}}
    """)
    assert len(problems) == 1, problems
    assert problems[0].where == "mappings.yaml:9 (products.joins[0].on.id_lang)"
    assert "`joined_column: {const: value}`" in problems[0].what


def test_check_finds_unknown_constant_columns_with_a_hint(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    texts_meta.create_all(engine)
    sa.Table("items", texts_meta, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("lang_id", sa.Integer)).create(engine)
    engine.dispose()
    problems = check(sqlite_url, """
        products:
          table: items
          joins:
            - table: product_texts
              alias: t
              on: {id: product_id, lang_idd: {const: 1}}
            - table: product_texts
              alias: u
              on: {id: product_id, lang_code: {const: de}}
            - table: product_texts
              alias: v
              on: {t.product_idd: product_id}
          fields: {id: id, name: t.title, price: {const: 1}}
    """)
    find(problems, "(products.joins[0].on.lang_idd)", "'lang_idd' is not a column of join 't'",
         "did you mean 'lang_id'?")
    find(problems, "(products.joins[2].on.t.product_idd)", "did you mean 'product_id'?")
    assert not [p for p in problems if "joins[1]" in p.where]
    # A resource column named as if it were the joined table's: the hint says where it goes.
    problems = check(sqlite_url, """
        products:
          table: product_texts
          key: [product_id, lang_id]
          joins:
            - table: items
              alias: i
              on: {product_id: id, lang_code: {const: de}}
          fields: {id: product_id, name: title, price: {const: 1}}
    """)
    find(problems, "(products.joins[0].on.lang_code)", "compares the joined table's column",
         "where:")


def test_constants_are_bound_in_the_joined_columns_type(shop_url: str) -> None:
    meta = sa.MetaData()
    sa.Table("things", meta, sa.Column("id", sa.Integer, primary_key=True))
    flags = sa.Table("thing_flags", meta,
                     sa.Column("thing_id", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("kind", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("active", sa.Boolean, nullable=False),
                     sa.Column("label", sa.String(20), nullable=False))
    engine = sa.create_engine(shop_url)
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(meta.tables["things"].insert(), [{"id": 1}, {"id": 2}])
        conn.execute(flags.insert(), [
            {"thing_id": t, "kind": k, "active": a, "label": f"t{t}/{k}/{a}"}
            for t in (1, 2) for k in (1, 2) for a in (True,) if (t, k) != (2, 2)
        ])
    engine.dispose()
    loaded = parse_mapping(textwrap.dedent("""
        categories:
          table: things
          joins:
            - {table: thing_flags, alias: f, on: {id: thing_id, kind: {const: "2"},
                                                   active: {const: 1}}}
            - {table: thing_flags, alias: g, on: {id: thing_id, kind: {const: true}}}
            - {table: thing_flags, alias: h, on: {id: thing_id, label: {const: 0}}}
          fields: {id: id, name: f.label, url: g.label, never: h.label}
    """), FILE)
    reader = connect_shop(shop_url)
    try:
        records = {r.key: r.payload for r in ShopSource(reader, loaded).records(
            Resource.CATEGORIES)}
    finally:
        reader.dispose()
    # label = 0 is text = '0' (on MySQL a bound 0 would match every label not led by a digit)
    assert records == {"1": {"id": "1", "name": "t1/2/True", "url": "t1/1/True"},
                       "2": {"id": "2", "url": "t2/1/True"}}
