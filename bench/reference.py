"""The bare reference: what reading the demo shop costs with nothing but psycopg and json.

Hand-written SQL for the same columns and child rows the mapping reads, server-side cursors,
a hand-written merge of children into parents, the same records composed by hand, each hashed
the simplest way (json.dumps with sorted keys, sha256). No state, no mapping, no SQLAlchemy:
the floor a full reconciliation cycle is measured against.
`python -m bench.reference --source URL [--check]`; --check compares every record with what
cdc-sync composes from the same shop (use a small scale), so the floor reads the same thing.

`--strong` is the stronger second reference, the floor: binary server-side cursors (psycopg
`binary=True`; on MariaDB/MySQL the C driver mysqlclient when installed), orjson with sorted
keys and blake2b instead of json.dumps and sha256. The first reference stays as it was.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import psycopg
import pymysql
import pymysql.cursors
import sqlalchemy as sa

from bench.proc import ROOT, emit, peak_rss_mb
from cdc_sync.core.resources import Resource
from cdc_sync.mapping.loader import load_mapping
from cdc_sync.source import ShopSource, connect_shop

Row = tuple[Any, ...]
Record = dict[str, Any]

ZONE = ZoneInfo("Europe/Sofia")  # mappings.yaml: source_timezone
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)
STATUS = {1: "pending", 2: "processing", 3: "completed", 4: "cancelled", 5: "refunded"}
ITERSIZE = 2000

GUESTS_SQL = """
SELECT g.email, g.created_at, g.billing_first_name, g.billing_last_name FROM (
    SELECT lower(trim(o.email)) AS email, o.created_at, o.billing_first_name,
           o.billing_last_name,
           row_number() OVER (PARTITION BY lower(trim(o.email)) ORDER BY o.created_at, o.id) AS rn
    FROM orders o WHERE trim(o.email) <> '') g
WHERE g.rn = 1 AND NOT EXISTS (SELECT 1 FROM customers c WHERE lower(trim(c.email)) = g.email)
ORDER BY g.email"""
# MariaDB runs that NOT EXISTS as a scan of customers per guest; NOT IN as one indexed set.
GUESTS_SQL_MYSQL = GUESTS_SQL.replace(
    "NOT EXISTS (SELECT 1 FROM customers c WHERE lower(trim(c.email)) = g.email)",
    "g.email NOT IN (SELECT lower(trim(c.email)) FROM customers c WHERE c.email IS NOT NULL)")
DELETED_SQL = """
SELECT l.product_id, max(l.product_name), max(l.unit_price) FROM order_lines l
WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.id = l.product_id)
GROUP BY l.product_id ORDER BY l.product_id"""


def ms(value: datetime) -> int:
    return (value.replace(tzinfo=ZONE) - EPOCH) // MS


def number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(str(value))


def customer(row: Row, children: list[list[Row]]) -> Record:
    _id, email, created, first, last, newsletter = row
    return {"email": email.strip().lower(), "createdAt": ms(created), "firstName": first,
            "lastName": last, "subscribed": newsletter == "Y",
            "tags": [name for _, name in children[0]]}


def guest(row: Row, _children: list[list[Row]]) -> Record:
    email, created, first, last = row
    return {"firstName": first, "lastName": last, "email": email, "createdAt": ms(created)}


def category(row: Row, _children: list[list[Row]]) -> Record:
    ident, name, slug = row
    return {"id": str(ident), "name": name, "url": f"https://demo-shop.example/c/{slug}"}


def deleted_product(row: Row, _children: list[list[Row]]) -> Record:
    ident, name, price = row
    return {"name": name, "price": number(price), "id": str(ident)}


def product(row: Row, children: list[list[Row]]) -> Record:
    ident, name, sku, price, slug = row
    categories, variants = children
    return {"id": str(ident), "name": name, "sku": sku, "price": number(price),
            "url": f"https://demo-shop.example/p/{slug}",
            "categories": [str(c) for _, c in categories],
            "options": [{"id": str(v), "name": n, "sku": s, "price": number(p)}
                        for _, v, n, s, p in variants]}


def order(row: Row, children: list[list[Row]]) -> Record:
    ident, created, email, total, status, *billing_values = row
    lines, coupons = children
    billing = {name: value for name, value in zip(
        ("address", "city", "countryCode", "postcode", "phone", "paymentMethod"),
        billing_values, strict=True) if value is not None}
    record: Record = {"id": str(ident), "createdAt": ms(created), "email": email.strip().lower(),
                      "amount": number(total), "status": STATUS.get(status, "other")}
    if billing:
        record["billing"] = billing
    record["products"] = [{"productId": str(p), "quantity": q} for _, p, q in lines]
    record["coupons"] = [code for _, code in coupons]
    return record


RESOURCES: dict[str, tuple[str, list[str], Callable[[Row, list[list[Row]]], Record]]] = {
    "customers": (
        "SELECT id, email, created_at, first_name, last_name, newsletter FROM customers "
        "ORDER BY id",
        ["SELECT ct.customer_id, t.name FROM customer_tags ct JOIN tags t ON t.id = ct.tag_id "
         "ORDER BY ct.customer_id, t.name"],
        customer),
    "guest_customers": (GUESTS_SQL, [], guest),
    "categories": ("SELECT id, name, slug FROM categories ORDER BY id", [], category),
    "deleted_products": (DELETED_SQL, [], deleted_product),
    "products": (
        "SELECT id, name, sku, price, slug FROM products ORDER BY id",
        ["SELECT product_id, category_id FROM product_categories "
         "ORDER BY product_id, category_id",
         "SELECT product_id, id, name, sku, price FROM product_variants ORDER BY product_id, id"],
        product),
    "orders": (
        "SELECT id, created_at, email, total, status, billing_address, billing_city, "
        "billing_country, billing_postcode, billing_phone, payment_method FROM orders ORDER BY id",
        ["SELECT order_id, product_id, quantity FROM order_lines ORDER BY order_id, id",
         "SELECT order_id, code FROM order_coupons ORDER BY order_id, code"],
        order),
}


Reader = Callable[[str, str], Iterator[Row]]  # (sql, cursor name) -> rows, streamed


@contextmanager
def open_reader(url: str, *, strong: bool = False) -> Iterator[Reader]:
    """Streams rows: psycopg server-side cursors on one connection, or on MariaDB/MySQL
    unbuffered cursors, one connection each (a connection streams one result)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        connect = _mysqldb_connect if strong and _has_mysqldb() else _pymysql_connect
        yield lambda sql, _name: _mysql_rows(connect(parsed), sql)
        return
    with psycopg.connect(_libpq(url)) as conn:
        yield lambda sql, name: _cursor(conn, sql, name, binary=strong)


def _cursor(conn: psycopg.Connection[Row], sql: str, name: str, *,
            binary: bool = False) -> Iterator[Row]:
    with conn.cursor(name=name, binary=binary) as cursor:
        cursor.itersize = ITERSIZE
        cursor.execute(sql)  # our own constant SQL
        yield from cursor


def _has_mysqldb() -> bool:
    return importlib.util.find_spec("MySQLdb") is not None


def _pymysql_connect(url: sa.URL) -> Any:
    return pymysql.connect(host=url.host or "127.0.0.1", port=url.port or 3306,
                           user=url.username or "root", password=url.password or "",
                           database=url.database, charset="utf8mb4",
                           cursorclass=pymysql.cursors.SSCursor)


def _mysqldb_connect(url: sa.URL) -> Any:
    mysqldb = importlib.import_module("MySQLdb")
    cursors = importlib.import_module("MySQLdb.cursors")
    return mysqldb.connect(host=url.host or "127.0.0.1", port=url.port or 3306,
                           user=url.username or "root", password=url.password or "",
                           database=url.database, charset="utf8mb4",
                           cursorclass=cursors.SSCursor)


def _mysql_rows(conn: Any, sql: str) -> Iterator[Row]:
    if sql == GUESTS_SQL:
        sql = GUESTS_SQL_MYSQL
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)  # our own constant SQL
            yield from cursor
    finally:
        conn.close()


class _Children:
    """One child query, read ahead by a row: each parent takes the rows with its id."""

    def __init__(self, rows: Iterator[Row]) -> None:
        self.rows = rows
        self.head = next(rows, None)

    def take(self, parent: Any) -> list[Row]:
        taken = []
        while self.head is not None and self.head[0] <= parent:
            if self.head[0] == parent:
                taken.append(self.head)
            self.head = next(self.rows, None)
        return taken


def records(read: Reader, name: str) -> Iterator[tuple[Any, Record]]:
    """(key, record) for every record of one resource, composed by hand."""
    for key, record, _raw in raw_records(read, name):
        yield key, record


def raw_records(read: Reader, name: str) -> Iterator[tuple[Any, Record, Any]]:
    """(key, record, (row, child rows)) for every record of one resource, composed by hand."""
    sql, child_sql, compose = RESOURCES[name]
    parents = read(sql, f"{name}_rows")
    children = [_Children(read(c, f"{name}_child{i}")) for i, c in enumerate(child_sql)]
    for row in parents:
        kids = [c.take(row[0]) for c in children]
        yield row[0], compose(row, kids), (row, kids)


def fingerprint(record: Record) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def strong_fingerprint(record: Record) -> bytes:
    return hashlib.blake2b(orjson.dumps(record, option=orjson.OPT_SORT_KEYS),
                           digest_size=16).digest()


def read_all(url: str, *, strong: bool = False) -> dict[str, Any]:
    """Read and hash every record of every resource; times and counts per resource."""
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    started = time.perf_counter()
    hash_record: Callable[[Record], object] = strong_fingerprint if strong else fingerprint
    with open_reader(url, strong=strong) as read:
        for name in RESOURCES:
            begun, count = time.perf_counter(), 0
            for _key, record in records(read, name):
                hash_record(record)
                count += 1
            seconds[name], counts[name] = time.perf_counter() - begun, count
    return {"seconds": time.perf_counter() - started, "resource_seconds": seconds,
            "counts": counts, "peak_rss_mb": peak_rss_mb()}


def check(url: str) -> list[str]:
    """Where the reference's records differ from cdc-sync's (empty: they are the same)."""
    mapping = load_mapping(Path(ROOT, "mappings.yaml"))
    engine = connect_shop(url)
    source = ShopSource(engine, mapping)
    differences: list[str] = []
    try:
        with open_reader(url) as read:
            for name in RESOURCES:
                mine = {str(key): record for key, record in records(read, name)}
                theirs = {r.key: r.payload for r in source.records(Resource(name))}
                if mine != theirs:
                    differing = [k for k in theirs if mine.get(k) != theirs[k]]
                    differences.append(
                        f"{name}: {len(mine)} vs {len(theirs)} records, first differing "
                        f"{differing[:1]}: {[mine.get(k) for k in differing[:1]]} "
                        f"vs {[theirs[k] for k in differing[:1]]}")
    finally:
        engine.dispose()
    return differences


def _libpq(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True, help="the benchmark shop's SQLAlchemy URL")
    parser.add_argument("--check", action="store_true",
                        help="compare every record with cdc-sync's instead of timing")
    parser.add_argument("--strong", action="store_true",
                        help="the stronger reference: binary reads (mysqlclient on MariaDB "
                             "when installed), orjson, blake2b")
    args = parser.parse_args()
    if args.check:
        emit({"differences": check(args.source)})
    else:
        emit(read_all(args.source, strong=args.strong))


if __name__ == "__main__":
    main()
