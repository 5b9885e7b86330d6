"""A Magento shop in MariaDB: Magento 2 (Open Source, or Commerce with row_id staging) or
Magento 1 / OpenMage, with the columns the preset reads under their real names and types (from
Magento's db_schema.xml files and OpenMage's install scripts).

EAV ids are deliberately not the usual ones (catalog_product is entity type 10, as in a real
Magento 1 database), so a mapping with hard-coded ids reads nothing. Store view 1 overrides
names, which the preset must not take (it reads the admin store view, 0). A configurable
product is ordered as Magento records it: its own line plus the chosen simple product's line.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from helpers.platforms.expected import Expected, ms
from helpers.platforms.woocommerce import Shop, load

ENTITY_TYPES = {"customer": 11, "catalog_category": 12, "catalog_product": 10}
ATTRIBUTES = [  # attribute_id, entity type, code, backend_type
    (71, "catalog_product", "name", "varchar"), (75, "catalog_product", "price", "decimal"),
    (97, "catalog_product", "url_key", "varchar"), (45, "catalog_category", "name", "varchar"),
    (5, "customer", "firstname", "varchar"), (7, "customer", "lastname", "varchar"),
]
STATUSES = ["pending", "processing", "complete", "closed", "canceled", "holded"]
START = datetime(2024, 3, 1, 8, 0, 0)
FUTURE = 2_000_000_000  # a staged update not yet live (Commerce: a version in 2033)
MAX_VERSION = 2_147_483_647


def _ddl(version: int, staged: bool) -> str:
    link = "row_id int unsigned NOT NULL" if staged else "entity_id int unsigned NOT NULL"
    entity_key = ("row_id int unsigned NOT NULL AUTO_INCREMENT, entity_id int unsigned NOT NULL, "
                  "created_in bigint unsigned NOT NULL DEFAULT 1, updated_in bigint unsigned "
                  "NOT NULL DEFAULT 2147483647, PRIMARY KEY (row_id)" if staged else
                  "entity_id int unsigned NOT NULL AUTO_INCREMENT, PRIMARY KEY (entity_id)")
    orders = "sales_order" if version == 2 else "sales_flat_order"
    ts = "timestamp NULL DEFAULT NULL" if version == 2 else "datetime NULL DEFAULT NULL"
    m1_type = "entity_type_id smallint unsigned NOT NULL DEFAULT 0," if version == 1 else ""
    customer = (
        "firstname varchar(255) NULL, lastname varchar(255) NULL," if version == 2 else
        "entity_type_id smallint unsigned NOT NULL DEFAULT 0, attribute_set_id smallint "
        "unsigned NOT NULL DEFAULT 0, increment_id varchar(50) NULL,")
    return f"""
CREATE TABLE {{p}}store (store_id smallint unsigned NOT NULL, code varchar(32), website_id
  smallint unsigned NOT NULL DEFAULT 0, group_id smallint unsigned NOT NULL DEFAULT 0,
  name varchar(255) NOT NULL, sort_order smallint unsigned NOT NULL DEFAULT 0,
  is_active smallint unsigned NOT NULL DEFAULT 0, PRIMARY KEY (store_id));
CREATE TABLE {{p}}eav_entity_type (entity_type_id smallint unsigned NOT NULL AUTO_INCREMENT,
  entity_type_code varchar(50) NOT NULL, entity_model varchar(255) NOT NULL,
  entity_table varchar(255) NULL, PRIMARY KEY (entity_type_id));
CREATE TABLE {{p}}eav_attribute (attribute_id smallint unsigned NOT NULL AUTO_INCREMENT,
  entity_type_id smallint unsigned NOT NULL DEFAULT 0, attribute_code varchar(255) NOT NULL,
  backend_type varchar(8) NOT NULL DEFAULT 'static', frontend_input varchar(50) NULL,
  frontend_label varchar(255) NULL, is_required smallint unsigned NOT NULL DEFAULT 0,
  is_user_defined smallint unsigned NOT NULL DEFAULT 0, PRIMARY KEY (attribute_id),
  UNIQUE KEY (entity_type_id, attribute_code));
CREATE TABLE {{p}}catalog_product_entity ({entity_key.replace(", PRIMARY", ", " + m1_type
  + " PRIMARY") if version == 1 else entity_key},
  attribute_set_id smallint unsigned NOT NULL DEFAULT 0, type_id varchar(32) NOT NULL DEFAULT
  'simple', sku varchar(64) NULL, has_options smallint NOT NULL DEFAULT 0, required_options
  smallint unsigned NOT NULL DEFAULT 0, created_at {ts}, updated_at {ts});
CREATE TABLE {{p}}catalog_product_entity_varchar (value_id int NOT NULL AUTO_INCREMENT, {m1_type}
  attribute_id smallint unsigned NOT NULL DEFAULT 0, store_id smallint unsigned NOT NULL
  DEFAULT 0, {link}, value varchar(255) NULL, PRIMARY KEY (value_id));
CREATE TABLE {{p}}catalog_product_entity_decimal (value_id int NOT NULL AUTO_INCREMENT, {m1_type}
  attribute_id smallint unsigned NOT NULL DEFAULT 0, store_id smallint unsigned NOT NULL
  DEFAULT 0, {link}, value decimal(20,6) NULL, PRIMARY KEY (value_id));
CREATE TABLE {{p}}catalog_product_super_link (link_id int unsigned NOT NULL AUTO_INCREMENT,
  product_id int unsigned NOT NULL DEFAULT 0, parent_id int unsigned NOT NULL DEFAULT 0,
  PRIMARY KEY (link_id));
CREATE TABLE {{p}}catalog_category_entity ({entity_key}, attribute_set_id smallint unsigned
  NOT NULL DEFAULT 0, parent_id int unsigned NOT NULL DEFAULT 0, created_at {ts},
  updated_at {ts}, path varchar(255) NOT NULL, position int NOT NULL, level int NOT NULL
  DEFAULT 0, children_count int NOT NULL);
CREATE TABLE {{p}}catalog_category_entity_varchar (value_id int NOT NULL AUTO_INCREMENT,
  {m1_type} attribute_id smallint unsigned NOT NULL DEFAULT 0, store_id smallint unsigned
  NOT NULL DEFAULT 0, {link}, value varchar(255) NULL, PRIMARY KEY (value_id));
CREATE TABLE {{p}}catalog_category_product (entity_id int NOT NULL AUTO_INCREMENT,
  category_id int unsigned NOT NULL DEFAULT 0, product_id int unsigned NOT NULL DEFAULT 0,
  position int NOT NULL DEFAULT 0, PRIMARY KEY (entity_id));
CREATE TABLE {{p}}customer_entity (entity_id int unsigned NOT NULL AUTO_INCREMENT,
  website_id smallint unsigned NULL, email varchar(255) NULL, group_id smallint unsigned NOT
  NULL DEFAULT 0, store_id smallint unsigned NULL DEFAULT 0, created_at {ts}, updated_at {ts},
  is_active smallint unsigned NOT NULL DEFAULT 1, {customer} PRIMARY KEY (entity_id));
CREATE TABLE {{p}}customer_entity_varchar (value_id int NOT NULL AUTO_INCREMENT,
  entity_type_id smallint unsigned NOT NULL DEFAULT 0, attribute_id smallint unsigned NOT
  NULL DEFAULT 0, entity_id int unsigned NOT NULL DEFAULT 0, value varchar(255) NULL,
  PRIMARY KEY (value_id));
CREATE TABLE {{p}}{orders} (entity_id int unsigned NOT NULL AUTO_INCREMENT, state varchar(32),
  status varchar(32), coupon_code varchar(255), store_id smallint unsigned, customer_id int
  unsigned, grand_total decimal(20,4), customer_is_guest smallint unsigned, billing_address_id
  int, increment_id varchar(50), customer_email varchar(128), customer_firstname
  varchar(128), customer_lastname varchar(128), remote_ip varchar(45), created_at {ts},
  updated_at {ts}, PRIMARY KEY (entity_id));
CREATE TABLE {{p}}{orders}_item (item_id int unsigned NOT NULL AUTO_INCREMENT, order_id int
  unsigned NOT NULL DEFAULT 0, parent_item_id int unsigned, store_id smallint unsigned,
  created_at {ts}, updated_at {ts}, product_id int unsigned, product_type varchar(255),
  sku varchar(255), name varchar(255), qty_ordered decimal(12,4) DEFAULT 0, price
  decimal(20,4) NOT NULL DEFAULT 0, row_total decimal(20,4) NOT NULL DEFAULT 0,
  PRIMARY KEY (item_id));
CREATE TABLE {{p}}{orders}_address (entity_id int unsigned NOT NULL AUTO_INCREMENT, parent_id
  int unsigned, customer_address_id int, customer_id int, region varchar(255), postcode
  varchar(255), lastname varchar(255), street varchar(255), city varchar(255), email
  varchar(255), telephone varchar(255), country_id varchar(2), firstname varchar(255),
  address_type varchar(255), PRIMARY KEY (entity_id));
CREATE TABLE {{p}}{orders}_payment (entity_id int unsigned NOT NULL AUTO_INCREMENT, parent_id
  int unsigned NOT NULL, method varchar(128), amount_ordered decimal(20,4),
  PRIMARY KEY (entity_id));
"""


class Catalog:
    """Writes EAV rows the way Magento keys them (entity_id, or row_id when staged)."""

    def __init__(self, shop: Shop, version: int, staged: bool) -> None:
        self.shop, self.version, self.staged = shop, version, staged
        self.codes = {(t, c): a for a, t, c, _ in ATTRIBUTES}

    def entity(self, table: str, entity_id: int, **columns: Any) -> int:
        """The row of an entity; returns the id its EAV values are keyed by."""
        if self.version == 1 and table == "catalog_product_entity":
            columns["entity_type_id"] = ENTITY_TYPES["catalog_product"]
        if not self.staged:
            self.shop.add(table, entity_id=entity_id, **columns)
            return entity_id
        row_id = 5000 + 2 * entity_id  # the next one is its staged update
        self.shop.add(table, row_id=row_id, entity_id=entity_id, created_in=1,
                      updated_in=FUTURE, **columns)
        # A scheduled update (not live yet) renames it: the preset must not read it.
        self.shop.add(table, row_id=row_id + 1, entity_id=entity_id, created_in=FUTURE,
                      updated_in=MAX_VERSION, **columns)
        self._value(table, "varchar", row_id + 1, "name", f"FUTURE {entity_id}", 0)
        return row_id

    def value(self, table: str, kind: str, key: int, code: str, value: Any,
              store: int = 0) -> None:
        self._value(table, kind, key, code, value, store)

    def _value(self, table: str, kind: str, key: int, code: str, value: Any, store: int) -> None:
        entity_type = {"catalog_product_entity": "catalog_product",
                       "catalog_category_entity": "catalog_category",
                       "customer_entity": "customer"}[table]
        row: dict[str, Any] = {"attribute_id": self.codes[(entity_type, code)], "value": value}
        row["row_id" if self.staged and table != "customer_entity" else "entity_id"] = key
        if table != "customer_entity":
            row["store_id"] = store
        if self.version == 1:
            row["entity_type_id"] = ENTITY_TYPES[entity_type]
        self.shop.add(f"{table}_{kind}", **row)


def build(url: str, *, version: int = 2, staged: bool = False, prefix: str = "",
          seed: int = 5) -> Expected:
    rng = random.Random(seed)
    shop, expected = Shop(prefix), Expected()
    catalog = Catalog(shop, version, staged)
    shop.add("store", store_id=0, code="admin", name="Admin", is_active=1)
    shop.add("store", store_id=1, code="default", name="Default Store View", is_active=1)
    for code, type_id in ENTITY_TYPES.items():
        shop.add("eav_entity_type", entity_type_id=type_id, entity_type_code=code,
                 entity_model=f"Magento\\{code}")
    for attribute_id, entity_type, code, backend in ATTRIBUTES:
        shop.add("eav_attribute", attribute_id=attribute_id, attribute_code=code,
                 entity_type_id=ENTITY_TYPES[entity_type], backend_type=backend)
    customers = _customers(shop, catalog, expected, rng)
    categories = _categories(catalog, expected)
    products = _products(shop, catalog, expected, rng, categories)
    _orders(shop, expected, rng, customers, products, "sales_order" if version == 2
            else "sales_flat_order")
    load(url, shop, _ddl(version, staged))
    return expected


def _customers(shop: Shop, catalog: Catalog, expected: Expected,
               rng: random.Random) -> list[tuple[int, str, str, str]]:
    found = []
    for entity_id in range(1, 11):
        first, last = rng.choice(["Ana", "Ivo", "Mia", "Teo"]), rng.choice(["Popa", "Kralj"])
        email = f"{first.lower()}{entity_id}@example.hr"
        created = START + timedelta(days=entity_id, minutes=rng.randrange(900))
        columns: dict[str, Any] = {"email": email, "website_id": 1, "store_id": 1,
                                   "created_at": created, "updated_at": created}
        if catalog.version == 2:
            columns.update(firstname=first, lastname=last)
        else:
            columns["entity_type_id"] = ENTITY_TYPES["customer"]
            catalog.value("customer_entity", "varchar", entity_id, "firstname", first)
            catalog.value("customer_entity", "varchar", entity_id, "lastname", last)
        shop.add("customer_entity", entity_id=entity_id, **columns)
        expected.customers[email] = {"email": email, "createdAt": ms(created),
                                     "firstName": first, "lastName": last}
        found.append((entity_id, email, first, last))
    return found


def _categories(catalog: Catalog, expected: Expected) -> list[int]:
    tree = [(1, 0, 0, "Root Catalog"), (2, 1, 1, "Default Category"), (3, 2, 2, "Bikes"),
            (4, 2, 2, "Parts"), (5, 4, 3, "Brakes")]
    for entity_id, parent, level, name in tree:
        key = catalog.entity("catalog_category_entity", entity_id, parent_id=parent,
                             path=f"1/{entity_id}", position=entity_id, level=level,
                             children_count=0)
        catalog.value("catalog_category_entity", "varchar", key, "name", name)
        catalog.value("catalog_category_entity", "varchar", key, "name", f"{name} (HR)", 1)
        if level >= 2:
            expected.categories[str(entity_id)] = {"id": str(entity_id), "name": name}
    return [3, 4, 5]


def _product(shop: Shop, catalog: Catalog, entity_id: int, sku: str, name: str,
             price: Decimal, type_id: str) -> None:
    key = catalog.entity("catalog_product_entity", entity_id, sku=sku, type_id=type_id,
                         attribute_set_id=4, created_at=START, updated_at=START)
    catalog.value("catalog_product_entity", "varchar", key, "name", name)
    catalog.value("catalog_product_entity", "varchar", key, "name", f"{name} (store 1)", 1)
    catalog.value("catalog_product_entity", "decimal", key, "price", price)
    catalog.value("catalog_product_entity", "varchar", key, "url_key", sku.lower())


def _products(shop: Shop, catalog: Catalog, expected: Expected, rng: random.Random,
              categories: list[int]) -> list[tuple[int, str, Decimal, list[int]]]:
    sellable: list[tuple[int, str, Decimal, list[int]]] = []
    for entity_id in range(101, 109):
        name, price = f"Bike part {entity_id}", Decimal(rng.randrange(1000, 90000)) / 100
        _product(shop, catalog, entity_id, f"BP-{entity_id}", name, price, "simple")
        chosen = sorted(rng.sample(categories, 2))
        for category in chosen:
            shop.add("catalog_category_product", category_id=category, product_id=entity_id)
        expected.products[str(entity_id)] = {"id": str(entity_id), "sku": f"BP-{entity_id}",
                                             "name": name, "price": price,
                                             "categories": [str(c) for c in chosen],
                                             "options": []}
        sellable.append((entity_id, name, price, []))
    # A configurable jersey made of three simple products (its options, not products).
    _product(shop, catalog, 200, "JERSEY", "Team Jersey", Decimal("49.00"), "configurable")
    parent_key = 5000 + 2 * 200 if catalog.staged else 200
    options = []
    for offset, size in enumerate(["S", "M", "L"], 1):
        child = 200 + offset
        _product(shop, catalog, child, f"JERSEY-{size}", f"Team Jersey {size}",
                 Decimal("49.00") + offset, "simple")
        shop.add("catalog_product_super_link", product_id=child, parent_id=parent_key)
        options.append({"id": str(child), "sku": f"JERSEY-{size}",
                        "name": f"Team Jersey {size}", "price": Decimal("49.00") + offset})
    shop.add("catalog_category_product", category_id=3, product_id=200)
    expected.products["200"] = {"id": "200", "sku": "JERSEY", "name": "Team Jersey",
                                "price": Decimal("49.00"), "categories": ["3"],
                                "options": options}
    sellable.append((200, "Team Jersey", Decimal("49.00"), [201, 202, 203]))
    # Sold once, then deleted from the catalog: its order lines remain.
    expected.products["999"] = {"id": "999", "name": "Old Helmet", "price": Decimal("35.50")}
    sellable.append((999, "Old Helmet", Decimal("35.50"), []))
    return sellable


def _orders(shop: Shop, expected: Expected, rng: random.Random,
            customers: list[tuple[int, str, str, str]],
            products: list[tuple[int, str, Decimal, list[int]]], table: str) -> None:
    guests = [(None, f"guest{i}@mail.example", "Gost", f"Number{i}") for i in range(4)]
    item_id = 1
    for n in range(1, 31):
        customer_id, email, first, last = rng.choice(customers if n % 3 else guests)
        when = START + timedelta(days=20 + n, minutes=rng.randrange(600))
        status = STATUSES[n % len(STATUSES)]
        chosen = rng.sample(products[:-1], rng.randint(1, 3)) + (
            [products[-1]] if n == 4 else [])
        total, lines = Decimal("5.00"), []
        for product_id, name, price, children in chosen:
            qty = rng.randint(1, 2)
            shop.add(f"{table}_item", item_id=item_id, order_id=n, product_id=product_id,
                     product_type="configurable" if children else "simple", sku=name,
                     name=name, qty_ordered=qty, price=price, row_total=price * qty,
                     created_at=when, updated_at=when)
            if children:  # the simple product chosen inside the configurable one
                shop.add(f"{table}_item", item_id=item_id + 1, order_id=n,
                         parent_item_id=item_id, product_id=rng.choice(children),
                         product_type="simple", sku=name, name=name, qty_ordered=qty, price=0,
                         created_at=when, updated_at=when)
                item_id += 1
            item_id += 1
            total += price * qty
            lines.append((str(product_id), qty))
        coupon = "SUMMER" if n % 5 == 0 else None
        shop.add(table, entity_id=n, increment_id=f"{100000000 + n}", state=status,
                 status=status, coupon_code=coupon, store_id=1, customer_id=customer_id,
                 grand_total=total, customer_is_guest=0 if customer_id else 1,
                 billing_address_id=1000 + n, customer_email=email, customer_firstname=first,
                 customer_lastname=last, remote_ip=f"192.0.2.{n}", created_at=when,
                 updated_at=when)
        shop.add(f"{table}_address", entity_id=1000 + n, parent_id=n, address_type="billing",
                 street=f"Ilica {n}", city="Zagreb", postcode="10000", country_id="HR",
                 telephone=f"+385 1 {n:04d}", firstname=first, lastname=last, email=email)
        shop.add(f"{table}_address", entity_id=2000 + n, parent_id=n, address_type="shipping",
                 street="Elsewhere 1", city="Split", postcode="21000", country_id="HR")
        shop.add(f"{table}_payment", parent_id=n, method="checkmo", amount_ordered=total)
        increment = f"{100000000 + n}"
        expected.orders[increment] = {
            "id": increment, "email": email, "createdAt": ms(when), "amount": total,
            "status": status, "coupons": [coupon] if coupon else [], "products": sorted(lines),
            "ipAddress": f"192.0.2.{n}",
            "billing": {"address": f"Ilica {n}", "city": "Zagreb", "postcode": "10000",
                        "countryCode": "HR", "phone": f"+385 1 {n:04d}",
                        "paymentMethod": "checkmo"}}
        known = expected.customers.get(email)
        if customer_id is None and (known is None or known["createdAt"] > ms(when)):
            expected.customers[email] = {"email": email, "createdAt": ms(when),
                                         "firstName": first, "lastName": last}
