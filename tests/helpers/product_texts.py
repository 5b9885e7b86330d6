"""The demo shop plus product texts per language (PrestaShop's product_lang): a table the
mapping tests join with a constant (the language), from a resource and from a child."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from helpers.world import World

texts_meta = sa.MetaData()
product_texts = sa.Table(
    "product_texts", texts_meta,
    sa.Column("product_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("lang_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("lang_code", sa.String(5), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False, default=datetime(2024, 1, 1)),
)
LANGUAGES = {1: "en", 2: "de"}


def add_texts(shop: sa.Engine) -> None:
    """Each product's title in every language of LANGUAGES."""
    texts_meta.create_all(shop)
    with shop.begin() as conn:
        ids = conn.execute(sa.text("SELECT id FROM products")).scalars().all()
        conn.execute(product_texts.insert(), [
            {"product_id": pid, "lang_id": lang, "lang_code": code, "title": f"{code} {pid}"}
            for pid in ids for lang, code in LANGUAGES.items()
        ])


def texts_added(world: World) -> None:
    """A world's `prepare`: its shop with the texts."""
    add_texts(world.shop)


def options_named_in_german(data: dict[str, Any]) -> None:
    # variant -> its product -> the product's German text: a chain with a constant
    data["products"]["children"]["options"].update({
        "joins": [
            {"table": "products", "alias": "p", "on": {"product_id": "id"}},
            {"table": "product_texts", "alias": "t",
             "on": {"p.id": "product_id", "lang_id": {"const": 2}}},
        ],
        "fields": {"id": "id", "name": {"template": "{t.title} / {name}"}, "sku": "p.sku",
                   "price": "price"},
        "order_by": ["t.title", "id"],
    })
