"""The demo shop's schema in SQLAlchemy Core: the kind of legacy shop cdc-sync reads.

Integer status codes, a Y/N newsletter flag, naive DATETIMEs, billing columns on the order,
product names and prices copied onto order lines, tags and categories in link tables. No
foreign keys, as in many legacy shops: a product can be deleted after it was ordered.
Works on SQLite, PostgreSQL and MariaDB/MySQL.
"""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

metadata = sa.MetaData()


def _money() -> sa.Numeric[Decimal]:
    return sa.Numeric(10, 2)


customers = sa.Table(
    "customers", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("email", sa.String(255), nullable=False),
    sa.Column("first_name", sa.String(100)),
    sa.Column("last_name", sa.String(100)),
    sa.Column("newsletter", sa.CHAR(1), nullable=False, server_default="N"),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False, index=True),
)

tags = sa.Table(
    "tags", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(60), nullable=False, unique=True),
)

customer_tags = sa.Table(
    "customer_tags", metadata,
    sa.Column("customer_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tag_id", sa.Integer, primary_key=True, autoincrement=False),
)

categories = sa.Table(
    "categories", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("slug", sa.String(120), nullable=False),
)

products = sa.Table(
    "products", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("sku", sa.String(40), nullable=False),
    sa.Column("price", _money(), nullable=False),
    sa.Column("slug", sa.String(200), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False, index=True),
)

product_categories = sa.Table(
    "product_categories", metadata,
    sa.Column("product_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("category_id", sa.Integer, primary_key=True, autoincrement=False),
)

product_variants = sa.Table(
    "product_variants", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("product_id", sa.Integer, nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("sku", sa.String(40), nullable=False),
    sa.Column("price", _money(), nullable=False),
)

orders = sa.Table(
    "orders", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("customer_id", sa.Integer),  # NULL for guest checkouts
    sa.Column("email", sa.String(255), nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("total", sa.Numeric(12, 2), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False, index=True),
    sa.Column("billing_first_name", sa.String(100)),
    sa.Column("billing_last_name", sa.String(100)),
    sa.Column("billing_address", sa.String(200)),
    sa.Column("billing_city", sa.String(100)),
    sa.Column("billing_country", sa.CHAR(2)),
    sa.Column("billing_postcode", sa.String(20)),
    sa.Column("billing_phone", sa.String(40)),
    sa.Column("payment_method", sa.String(40)),
)

order_lines = sa.Table(
    "order_lines", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("order_id", sa.Integer, nullable=False, index=True),
    sa.Column("product_id", sa.Integer, nullable=False),
    sa.Column("product_name", sa.String(200), nullable=False),
    sa.Column("unit_price", _money(), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
)

order_coupons = sa.Table(
    "order_coupons", metadata,
    sa.Column("order_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("code", sa.String(40), primary_key=True),
)



def create_schema(engine: sa.Engine) -> None:
    """Create the demo shop's tables (those that do not exist yet)."""
    metadata.create_all(engine)
