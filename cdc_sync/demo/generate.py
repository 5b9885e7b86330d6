"""Seed the demo shop: deterministic for a seed, and fast enough for benchmark sizes.

Rows are produced by one seeded random stream and inserted with executemany in chunks
(SQLAlchemy Core, no ORM), so the same arguments give the same shop on every database, and
200k customers / 1M orders / 3M order lines take minutes, not hours.
The data holds what a sync has to cope with: guest orders (emails without a customer row,
some differing only in case and spaces), a product deleted after it was ordered, unmapped
status codes, customers with and without tags, products with and without variants.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any

import sqlalchemy as sa

from cdc_sync.demo import schema

CHUNK = 5000
START = datetime(2023, 1, 1, 8, 0, 0)
SHIPPING = Decimal("4.99")
TAGS = ("vip", "wholesale", "returning", "b2b", "Newsletter Fan")
COUPONS = ("WELCOME10", "SUMMER", "FREESHIP", "VIP20")
PAYMENTS = ("card", "paypal", "bank_transfer", "cash_on_delivery")
COUNTRIES = ("BG", "DE", "FR", "GB", "US", "NL", "ES")
CITIES = ("Sofia", "Berlin", "Paris", "London", "Boston", "Utrecht", "Madrid")
FIRST = ("Ana", "Boris", "Chloé", "Dmitri", "Elena", "Femi", "Georg", "Hana", "Ivan", "Júlia")
LAST = ("Ivanova", "Müller", "Smith", "Dubois", "Okafor", "García", "Novak", "Tanaka", "Rossi")
WORDS = ("Lamp", "Chair", "Mug", "Desk", "Shelf", "Rug", "Clock", "Vase", "Stool", "Frame")
ADJECTIVES = ("Oak", "Blue", "Tiny", "Grand", "Retro", "Smart", "Soft", "Bold")
STATUS_WEIGHTS = ((3, 60), (2, 12), (1, 10), (4, 8), (5, 6), (9, 4))  # 9: unmapped on purpose

DELETED_PRODUCT_NAME = "Discontinued Gadget"


@dataclass(frozen=True)
class Scale:
    """How many rows of each kind to make."""

    customers: int
    categories: int
    products: int
    orders: int


SMALL = Scale(customers=40, categories=6, products=25, orders=120)


def scale_for(customers: int) -> Scale:
    """A shop proportioned like a real one: 5 orders per customer, 1 product per 20 customers."""
    return Scale(customers, max(5, customers // 4000), max(20, customers // 20), customers * 5)


def generate(engine: sa.Engine, *, customers: int, categories: int, products: int, orders: int,
             seed: int = 1) -> None:
    """Create the schema (if missing) and fill it; the tables must be empty."""
    schema.create_schema(engine)
    rng = random.Random(seed)  # noqa: S311 - demo data, reproducible on purpose
    emails = [_customer_email(i, rng) for i in range(1, customers + 1)]
    _insert(engine, schema.customers, _customers(emails, rng))
    _insert(engine, schema.tags, ({"id": i, "name": n} for i, n in enumerate(TAGS, 1)))
    _insert(engine, schema.customer_tags, _customer_tags(customers, rng))
    _insert(engine, schema.categories, _categories(categories))
    prices = [Decimal(rng.randrange(100, 30000)) / 100 for _ in range(products)]
    _insert(engine, schema.products, _products(prices, rng))
    _insert(engine, schema.product_categories, _product_categories(products, categories, rng))
    _insert(engine, schema.product_variants, _variants(prices, rng))
    deleted_id = products + 1
    _ordered_then_deleted(engine, deleted_id)
    prices.append(Decimal("19.99"))  # the deleted product's last price
    order_rows, line_rows, coupon_rows = _orders(emails, prices, orders, rng)
    _insert_orders(engine, order_rows, line_rows, coupon_rows)


def _insert(engine: sa.Engine, table: sa.Table, rows: Iterable[dict[str, Any]]) -> None:
    iterator = iter(rows)
    while chunk := list(islice(iterator, CHUNK)):
        with engine.begin() as conn:
            conn.execute(table.insert(), chunk)


def _customer_email(i: int, rng: random.Random) -> str:
    first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
    local = f"{_ascii(first)}.{_ascii(last)}{i}".lower()
    # A few shops keep emails as typed: mixed case must still match the customer's orders.
    return f"{local.title()}@Example.com" if rng.random() < 0.05 else f"{local}@example.com"


def _ascii(text: str) -> str:
    return text.replace("é", "e").replace("ü", "u").replace("í", "i").replace("ú", "u")


def _when(rng: random.Random, spread_days: int = 700) -> datetime:
    return START + timedelta(seconds=rng.randrange(spread_days * 86400))


def _customers(emails: list[str], rng: random.Random) -> Iterator[dict[str, Any]]:
    for i, email in enumerate(emails, 1):
        created = _when(rng)
        yield {
            "id": i, "email": email,
            "first_name": FIRST[i % len(FIRST)], "last_name": LAST[(i // len(FIRST)) % len(LAST)],
            "newsletter": "Y" if rng.random() < 0.4 else "N",
            "created_at": created, "updated_at": created + timedelta(days=rng.randrange(30)),
        }


def _customer_tags(customers: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(1, customers + 1):
        if rng.random() < 0.25:
            for tag_id in sorted(rng.sample(range(1, len(TAGS) + 1), rng.randint(1, 2))):
                yield {"customer_id": i, "tag_id": tag_id}


def _categories(count: int) -> Iterator[dict[str, Any]]:
    for i in range(1, count + 1):
        name = f"{ADJECTIVES[i % len(ADJECTIVES)]} {WORDS[i % len(WORDS)]}s {i}"
        yield {"id": i, "name": name, "slug": name.lower().replace(" ", "-")}


def _products(prices: list[Decimal], rng: random.Random) -> Iterator[dict[str, Any]]:
    for i, price in enumerate(prices, 1):
        name = f"{ADJECTIVES[rng.randrange(len(ADJECTIVES))]} {WORDS[i % len(WORDS)]} {i}"
        yield {
            "id": i, "name": name, "sku": f"SKU-{i:07d}", "price": price,
            "slug": name.lower().replace(" ", "-"), "updated_at": _when(rng),
        }


def _product_categories(products: int, categories: int, rng: random.Random
                        ) -> Iterator[dict[str, Any]]:
    for i in range(1, products + 1):
        for category in sorted(rng.sample(range(1, categories + 1), min(categories, 1 + i % 2))):
            yield {"product_id": i, "category_id": category}


def _variants(prices: list[Decimal], rng: random.Random) -> Iterator[dict[str, Any]]:
    variant_id = 0
    for i, price in enumerate(prices, 1):
        if rng.random() < 0.2:
            for size in ("S", "M", "L")[: rng.randint(2, 3)]:
                variant_id += 1
                yield {"id": variant_id, "product_id": i, "name": f"Size {size}",
                       "sku": f"SKU-{i:07d}-{size}", "price": price + (1 if size == "L" else 0)}


def _ordered_then_deleted(engine: sa.Engine, product_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(schema.products.insert(), [{
            "id": product_id, "name": DELETED_PRODUCT_NAME, "sku": "SKU-GONE", "slug": "gone",
            "price": Decimal("19.99"), "updated_at": START,
        }])
        conn.execute(schema.products.delete().where(schema.products.c.id == product_id))


Rows = Iterator[dict[str, Any]]


def _orders(emails: list[str], prices: list[Decimal], count: int, rng: random.Random
            ) -> tuple[Rows, list[dict[str, Any]], list[dict[str, Any]]]:
    # Lines and coupons are collected per chunk of orders by _insert_orders, so memory stays
    # bounded: this returns a generator of orders that fills the two lists as it goes.
    lines: list[dict[str, Any]] = []
    coupons: list[dict[str, Any]] = []
    statuses = [s for s, _ in STATUS_WEIGHTS]
    weights = [w for _, w in STATUS_WEIGHTS]

    def rows() -> Rows:
        line_id = 0
        for order_id in range(1, count + 1):
            customer_id, email = _buyer(order_id, emails, rng)
            created = _when(rng)
            total = SHIPPING
            for position in range(rng.choice((1, 2, 3, 3, 4, 5))):
                line_id += 1
                product = _ordered_product(order_id, position, len(prices), rng)
                quantity = rng.randint(1, 3)
                total += prices[product - 1] * quantity
                lines.append({"id": line_id, "order_id": order_id, "product_id": product,
                              "product_name": _product_name(product, len(prices)),
                              "unit_price": prices[product - 1], "quantity": quantity})
            if rng.random() < 0.1:
                coupons.append({"order_id": order_id, "code": rng.choice(COUPONS)})
            city = rng.randrange(len(CITIES))
            yield {
                "id": order_id, "customer_id": customer_id, "email": email,
                "status": rng.choices(statuses, weights)[0], "total": total,
                "created_at": created, "updated_at": created + timedelta(hours=rng.randrange(96)),
                "billing_first_name": FIRST[order_id % len(FIRST)],
                "billing_last_name": LAST[order_id % len(LAST)],
                "billing_address": f"{rng.randint(1, 200)} Main Street",
                "billing_city": CITIES[city], "billing_country": COUNTRIES[city],
                "billing_postcode": f"{rng.randint(1000, 99999)}",
                "billing_phone": f"+359 88 {rng.randint(100000, 999999)}",
                "payment_method": rng.choice(PAYMENTS),
            }

    return rows(), lines, coupons


def _buyer(order_id: int, emails: list[str], rng: random.Random) -> tuple[int | None, str]:
    if not emails or rng.random() < 0.1:
        guest = rng.randrange(max(1, len(emails) // 4) + 1)
        email = f"guest{guest}@example.net"
        # The same guest sometimes types their email differently: still one guest customer.
        return None, (f" Guest{guest}@Example.NET " if order_id % 7 == 0 else email)
    customer_id = rng.randrange(len(emails)) + 1
    email = emails[customer_id - 1]
    return customer_id, (email.upper() if order_id % 11 == 0 else email)


def _ordered_product(order_id: int, position: int, products: int, rng: random.Random) -> int:
    if position == 0 and order_id % 50 == 1:
        return products  # the deleted product (the last id in `prices`)
    return rng.randrange(products - 1) + 1 if products > 1 else 1


def _product_name(product_id: int, products: int) -> str:
    if product_id == products:
        return DELETED_PRODUCT_NAME
    return f"Product {product_id}"  # the name as it was when ordered (shops copy it)


def _insert_orders(engine: sa.Engine, orders: Rows, lines: list[dict[str, Any]],
                   coupons: list[dict[str, Any]]) -> None:
    while chunk := list(islice(orders, CHUNK)):
        with engine.begin() as conn:
            conn.execute(schema.orders.insert(), chunk)
            conn.execute(schema.order_lines.insert(), lines)
            if coupons:
                conn.execute(schema.order_coupons.insert(), coupons)
        lines.clear()
        coupons.clear()
