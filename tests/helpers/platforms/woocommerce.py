"""A WooCommerce shop in MariaDB: WordPress's and WooCommerce's real tables (the columns the
preset reads, with their real names and types, from wp-admin/includes/schema.php, WooCommerce's
installer and its HPOS data store), filled with rows the way WooCommerce writes them.

`build(url, prefix, hpos=..., lookup=...)` creates the tables and returns what Metrilo should
hold afterwards, computed from the generated data (not through any mapping).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from helpers.platforms.expected import Expected, ms

DDL = """
CREATE TABLE {p}users (
  ID bigint(20) unsigned NOT NULL auto_increment,
  user_login varchar(60) NOT NULL default '',
  user_pass varchar(255) NOT NULL default '',
  user_nicename varchar(50) NOT NULL default '',
  user_email varchar(100) NOT NULL default '',
  user_url varchar(100) NOT NULL default '',
  user_registered datetime NOT NULL default '0000-00-00 00:00:00',
  user_activation_key varchar(255) NOT NULL default '',
  user_status int(11) NOT NULL default '0',
  display_name varchar(250) NOT NULL default '',
  PRIMARY KEY (ID)
);
CREATE TABLE {p}usermeta (
  umeta_id bigint(20) unsigned NOT NULL auto_increment,
  user_id bigint(20) unsigned NOT NULL default '0',
  meta_key varchar(255) default NULL,
  meta_value longtext,
  PRIMARY KEY (umeta_id),
  KEY user_id (user_id),
  KEY meta_key (meta_key(191))
);
CREATE TABLE {p}posts (
  ID bigint(20) unsigned NOT NULL auto_increment,
  post_author bigint(20) unsigned NOT NULL default '0',
  post_date datetime NOT NULL default '0000-00-00 00:00:00',
  post_date_gmt datetime NOT NULL default '0000-00-00 00:00:00',
  post_content longtext NOT NULL,
  post_title text NOT NULL,
  post_excerpt text NOT NULL,
  post_status varchar(20) NOT NULL default 'publish',
  post_name varchar(200) NOT NULL default '',
  post_modified datetime NOT NULL default '0000-00-00 00:00:00',
  post_modified_gmt datetime NOT NULL default '0000-00-00 00:00:00',
  post_parent bigint(20) unsigned NOT NULL default '0',
  menu_order int(11) NOT NULL default '0',
  post_type varchar(20) NOT NULL default 'post',
  PRIMARY KEY (ID),
  KEY type_status_date (post_type,post_status,post_date,ID),
  KEY post_parent (post_parent)
);
CREATE TABLE {p}postmeta (
  meta_id bigint(20) unsigned NOT NULL auto_increment,
  post_id bigint(20) unsigned NOT NULL default '0',
  meta_key varchar(255) default NULL,
  meta_value longtext,
  PRIMARY KEY (meta_id),
  KEY post_id (post_id),
  KEY meta_key (meta_key(191))
);
CREATE TABLE {p}terms (
  term_id bigint(20) unsigned NOT NULL auto_increment,
  name varchar(200) NOT NULL default '',
  slug varchar(200) NOT NULL default '',
  term_group bigint(10) NOT NULL default 0,
  PRIMARY KEY (term_id)
);
CREATE TABLE {p}term_taxonomy (
  term_taxonomy_id bigint(20) unsigned NOT NULL auto_increment,
  term_id bigint(20) unsigned NOT NULL default 0,
  taxonomy varchar(32) NOT NULL default '',
  description longtext NOT NULL,
  parent bigint(20) unsigned NOT NULL default 0,
  count bigint(20) NOT NULL default 0,
  PRIMARY KEY (term_taxonomy_id),
  UNIQUE KEY term_id_taxonomy (term_id,taxonomy)
);
CREATE TABLE {p}term_relationships (
  object_id bigint(20) unsigned NOT NULL default 0,
  term_taxonomy_id bigint(20) unsigned NOT NULL default 0,
  term_order int(11) NOT NULL default 0,
  PRIMARY KEY (object_id,term_taxonomy_id)
);
CREATE TABLE {p}woocommerce_order_items (
  order_item_id BIGINT UNSIGNED NOT NULL auto_increment,
  order_item_name TEXT NOT NULL,
  order_item_type varchar(200) NOT NULL DEFAULT '',
  order_id BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (order_item_id),
  KEY order_id (order_id)
);
CREATE TABLE {p}woocommerce_order_itemmeta (
  meta_id BIGINT UNSIGNED NOT NULL auto_increment,
  order_item_id BIGINT UNSIGNED NOT NULL,
  meta_key varchar(255) default NULL,
  meta_value longtext NULL,
  PRIMARY KEY (meta_id),
  KEY order_item_id (order_item_id),
  KEY meta_key (meta_key(32))
);
CREATE TABLE {p}wc_customer_lookup (
  customer_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  user_id BIGINT UNSIGNED DEFAULT NULL,
  username varchar(60) DEFAULT '' NOT NULL,
  first_name varchar(255) NOT NULL,
  last_name varchar(255) NOT NULL,
  email varchar(100) NULL default NULL,
  date_last_active timestamp NULL default null,
  date_registered timestamp NULL default null,
  country char(2) DEFAULT '' NOT NULL,
  postcode varchar(20) DEFAULT '' NOT NULL,
  city varchar(100) DEFAULT '' NOT NULL,
  state varchar(100) DEFAULT '' NOT NULL,
  PRIMARY KEY (customer_id),
  UNIQUE KEY user_id (user_id),
  KEY email (email)
);
CREATE TABLE {p}wc_orders (
  id bigint(20) unsigned,
  status varchar(20) null,
  currency varchar(10) null,
  type varchar(20) null,
  tax_amount decimal(26,8) null,
  total_amount decimal(26,8) null,
  customer_id bigint(20) unsigned null,
  billing_email varchar(320) null,
  date_created_gmt datetime null,
  date_updated_gmt datetime null,
  parent_order_id bigint(20) unsigned null,
  payment_method varchar(100) null,
  payment_method_title text null,
  transaction_id varchar(100) null,
  ip_address varchar(100) null,
  user_agent text null,
  customer_note text null,
  PRIMARY KEY (id),
  KEY status (status),
  KEY date_created (date_created_gmt),
  KEY customer_id_billing_email (customer_id, billing_email(171))
);
CREATE TABLE {p}wc_order_addresses (
  id bigint(20) unsigned auto_increment primary key,
  order_id bigint(20) unsigned NOT NULL,
  address_type varchar(20) null,
  first_name text null,
  last_name text null,
  company text null,
  address_1 text null,
  address_2 text null,
  city text null,
  state text null,
  postcode text null,
  country text null,
  email varchar(320) null,
  phone varchar(100) null,
  KEY order_id (order_id)
);
"""

STATUSES = {"wc-completed": "completed", "wc-processing": "processing", "wc-on-hold": "on-hold",
            "wc-cancelled": "cancelled", "wc-refunded": "refunded", "wc-pending": "pending",
            "wc-failed": "failed"}
FIRST = ["Ana", "Boris", "Chloé", "Dimitar", "Eva", "Frank", "Greta", "Hiro", "Ivo", "Jana"]
LAST = ["Ivanova", "Müller", "O'Neil", "Petrov", "Smith", "Tanaka", "Weiß", "Zhou"]
CITIES = [("Sofia", "BG", "1000"), ("Berlin", "DE", "10115"), ("Lyon", "FR", "69001"),
          ("Austin", "US", "73301")]
START = datetime(2024, 1, 1, 9, 0, 0)


@dataclass
class Shop:
    """Rows per table, and the ids the next insert takes."""

    prefix: str
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    next_post: int = 100
    next_item: int = 1

    def add(self, table: str, **row: Any) -> None:
        self.rows.setdefault(self.prefix + table, []).append(row)

    def post(self, post_type: str, title: str, status: str, when: datetime,
             parent: int = 0, meta: dict[str, Any] | None = None) -> int:
        post_id = self.next_post
        self.next_post += 1
        self.add("posts", ID=post_id, post_date=when, post_date_gmt=when, post_content="",
                 post_title=title, post_excerpt="", post_status=status,
                 post_name=title.lower().replace(" ", "-"), post_modified=when,
                 post_modified_gmt=when, post_parent=parent, post_type=post_type)
        for key, value in (meta or {}).items():
            for one in value if isinstance(value, list) else [value]:
                self.add("postmeta", post_id=post_id, meta_key=key, meta_value=str(one))
        return post_id

    def item(self, order_id: int, kind: str, name: str, meta: dict[str, Any]) -> None:
        item_id = self.next_item
        self.next_item += 1
        self.add("woocommerce_order_items", order_item_id=item_id, order_item_name=name,
                 order_item_type=kind, order_id=order_id)
        for key, value in meta.items():
            self.add("woocommerce_order_itemmeta", order_item_id=item_id, meta_key=key,
                     meta_value=str(value))


def build(url: str, prefix: str = "wp_", *, hpos: bool = False, lookup: bool = False,
          seed: int = 3) -> Expected:
    """Create and fill the shop at `url`; return what Metrilo should hold."""
    rng = random.Random(seed)
    shop, expected = Shop(prefix), Expected()
    customers = _customers(shop, expected, rng, lookup)
    terms = _terms(shop, expected)
    products = _products(shop, expected, rng, terms)
    _orders(shop, expected, rng, customers, products, hpos)
    load(url, shop, DDL)
    return expected


def _customers(shop: Shop, expected: Expected, rng: random.Random,
               lookup: bool) -> list[tuple[int, str, str, str]]:
    found = []
    roles = ["customer"] * 12 + ["administrator", "shop_manager"]
    for user_id, role in enumerate(roles, 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first.lower()}.{user_id}@shop.example"
        registered = START + timedelta(days=user_id, minutes=rng.randrange(1440))
        shop.add("users", ID=user_id, user_login=f"u{user_id}", user_email=email,
                 user_registered=registered, display_name=f"{first} {last}")
        caps = f'a:1:{{s:{len(role)}:"{role}";b:1;}}'
        for key, value in ((f"{shop.prefix}capabilities", caps), ("first_name", first),
                           ("last_name", last), ("billing_email", email)):
            shop.add("usermeta", user_id=user_id, meta_key=key, meta_value=value)
        if role != "customer":
            continue
        if lookup:
            shop.add("wc_customer_lookup", customer_id=user_id, user_id=user_id,
                     username=f"u{user_id}", first_name=first, last_name=last, email=email,
                     date_registered=registered)
        expected.customers[email] = {"email": email, "createdAt": ms(registered),
                                     "firstName": first, "lastName": last}
        found.append((user_id, email, first, last))
    return found


def _terms(shop: Shop, expected: Expected) -> dict[str, list[int]]:
    terms: dict[str, list[int]] = {"product_cat": [], "product_tag": [], "category": []}
    names = [("Chairs", "product_cat"), ("Tables & Desks", "product_cat"),
             ("Lamps", "product_cat"), ("Outdoor", "product_cat"), ("sale", "product_tag"),
             ("new", "product_tag"), ("eco", "product_tag"), ("News", "category")]
    for term_id, (name, taxonomy) in enumerate(names, 20):
        shop.add("terms", term_id=term_id, name=name, slug=name.lower().replace(" ", "-"))
        shop.add("term_taxonomy", term_taxonomy_id=term_id + 100, term_id=term_id,
                 taxonomy=taxonomy, description="")
        terms[taxonomy].append(term_id)
        if taxonomy != "category":  # blog categories are not product categories
            expected.categories[str(term_id)] = {"id": str(term_id), "name": name}
    return terms


@dataclass
class Product:
    id: int
    name: str
    price: Decimal
    variations: list[tuple[int, str, Decimal]]


def _products(shop: Shop, expected: Expected, rng: random.Random,
              terms: dict[str, list[int]]) -> list[Product]:
    found = []
    for n in range(1, 11):
        variable = n in (4, 8)
        kind = ["Chair", "Lamp", "Desk"][n % 3]
        name = f"{rng.choice(['Oak', 'Pine', 'Steel', 'Glass'])} {kind} {n}"
        price = Decimal(rng.randrange(500, 30000)) / 100
        when = START + timedelta(days=n)
        prices = [price + i for i in range(3)] if variable else [price]
        product_id = shop.post("product", name, "publish", when,
                               meta={"_price": [str(p) for p in prices], "_sku": f"SKU-{n}",
                                     "_regular_price": str(price)})
        variations = []
        for i, size in enumerate(["S", "M", "L"] if variable else []):
            var_id = shop.post("product_variation", f"{name} - {size}", "publish", when,
                               parent=product_id, meta={"_price": str(prices[i]),
                                                        "_sku": f"SKU-{n}-{size}",
                                                        "attribute_pa_size": size.lower()})
            variations.append((var_id, f"{name} - {size}", prices[i]))
        chosen = rng.sample(terms["product_cat"], 2) + rng.sample(terms["product_tag"], 1)
        for term_id in chosen:
            shop.add("term_relationships", object_id=product_id, term_taxonomy_id=term_id + 100)
        record: dict[str, Any] = {"id": str(product_id), "name": name, "price": min(prices),
                                  "sku": f"SKU-{n}", "categories": sorted(map(str, chosen))}
        record["options"] = [{"id": str(v), "name": vn, "price": vp, "sku": f"SKU-{n}-{vn[-1]}"}
                             for v, vn, vp in variations]
        expected.products[str(product_id)] = record
        found.append(Product(product_id, name, min(prices), variations))
    shop.post("product", "Draft Sofa", "draft", START, meta={"_price": "99", "_sku": "DRAFT"})
    # A product sold and then deleted: its post is gone, its order lines remain.
    gone = Product(9999, "Discontinued Stool", Decimal("19.90"), [])
    expected.products["9999"] = {"id": "9999", "name": gone.name, "price": gone.price}
    return [*found, gone]


def _orders(shop: Shop, expected: Expected, rng: random.Random,
            customers: list[tuple[int, str, str, str]], products: list[Product],
            hpos: bool) -> None:
    guests = [(0, f"guest{i}@mail.example", rng.choice(FIRST), rng.choice(LAST)) for i in range(5)]
    statuses = list(STATUSES)
    for n in range(40):
        user_id, email, first, last = rng.choice(customers if n % 3 else guests)
        status = "trash" if n == 7 else "auto-draft" if n == 11 else statuses[n % len(statuses)]
        when = START + timedelta(days=30 + n, hours=rng.randrange(24))
        city, country, postcode = rng.choice(CITIES)
        lines = _lines(rng, products, n)
        total = sum((price * qty for _, _, price, qty, _ in lines), Decimal("4.99"))
        billing = {"first_name": first, "last_name": last, "address_1": f"{n} Main St",
                   "city": city, "postcode": postcode, "country": country,
                   "phone": f"+359 88 {n:04d}", "email": email}
        coupons = ["SPRING10"] if n % 4 == 0 else []
        order_id = _order_row(shop, hpos, user_id, status, when, total, billing, coupons, n)
        for product_id, name, price, qty, variation in lines:
            shop.item(order_id, "line_item", name, {
                "_product_id": product_id, "_variation_id": variation, "_qty": qty,
                "_line_subtotal": price * qty, "_line_total": price * qty})
        shop.item(order_id, "shipping", "Flat rate", {"cost": "4.99"})
        for code in coupons:
            shop.item(order_id, "coupon", code, {"discount_amount": "0"})
        if status == "wc-refunded":  # a refund is a child object, never an order
            _refund(shop, hpos, order_id, total, when)
        if status in ("trash", "auto-draft"):
            continue
        expected.orders[str(order_id)] = {
            "id": str(order_id), "email": email, "createdAt": ms(when), "amount": total,
            "status": STATUSES[status], "coupons": coupons,
            "products": sorted((str(p), q) for p, _, _, q, _ in lines),
            "billing": {"address": billing["address_1"], "city": city, "postcode": postcode,
                        "countryCode": country, "phone": billing["phone"],
                        "paymentMethod": "Cash on delivery"},
            "ipAddress": f"10.0.0.{n}"}
        if user_id == 0:
            _guest(expected, email, first, last, when)


def _guest(expected: Expected, email: str, first: str, last: str, when: datetime) -> None:
    known = expected.customers.get(email)
    if known is None or known["createdAt"] > ms(when):
        expected.customers[email] = {"email": email, "createdAt": ms(when),
                                     "firstName": first, "lastName": last}


def _lines(rng: random.Random, products: list[Product],
           n: int) -> list[tuple[int, str, Decimal, int, int]]:
    chosen = rng.sample(products[:-1], rng.randint(1, 3))
    if n % 9 == 5:
        chosen.append(products[-1])  # the deleted product
    lines = []
    for product in chosen:
        qty = rng.randint(1, 3)
        if product.variations:
            var_id, name, price = rng.choice(product.variations)
            lines.append((product.id, name, price, qty, var_id))
        else:
            lines.append((product.id, product.name, product.price, qty, 0))
    return lines


def _order_row(shop: Shop, hpos: bool, user_id: int, status: str, when: datetime,
               total: Decimal, billing: dict[str, str], coupons: list[str], n: int) -> int:
    if not hpos:
        meta = {"_customer_user": user_id, "_order_total": total, "_order_currency": "EUR",
                "_payment_method_title": "Cash on delivery", "_customer_ip_address": f"10.0.0.{n}",
                **{f"_billing_{k}": v for k, v in billing.items()}}
        return shop.post("shop_order", f"Order &ndash; {when:%B %d, %Y}", status, when,
                         meta=meta)
    # HPOS: the posts table keeps a placeholder row that reserves the id.
    order_id = shop.post("shop_order_placehold", "", "draft", when)
    shop.add("wc_orders", id=order_id, status=status, currency="EUR", type="shop_order",
             tax_amount=0, total_amount=total, customer_id=user_id,
             billing_email=billing["email"], date_created_gmt=when, date_updated_gmt=when,
             parent_order_id=0, payment_method="cod", payment_method_title="Cash on delivery",
             ip_address=f"10.0.0.{n}")
    shop.add("wc_order_addresses", order_id=order_id, address_type="billing", **billing)
    shop.add("wc_order_addresses", order_id=order_id, address_type="shipping",
             **{**billing, "city": "Elsewhere"})
    return order_id


def _refund(shop: Shop, hpos: bool, order_id: int, total: Decimal, when: datetime) -> None:
    later = when + timedelta(days=2)
    if not hpos:
        shop.post("shop_order_refund", "Refund", "wc-completed", later, parent=order_id,
                  meta={"_refund_amount": total, "_order_total": -total})
        return
    refund_id = shop.post("shop_order_placehold", "", "draft", later)
    shop.add("wc_orders", id=refund_id, status="wc-completed", type="shop_order_refund",
             total_amount=-total, parent_order_id=order_id, date_created_gmt=later,
             date_updated_gmt=later)


def load(url: str, shop: Shop, ddl: str) -> None:
    """Create the tables of `ddl` ({p}: the prefix) and insert the shop's rows."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in ddl.replace("{p}", shop.prefix).split(";"):
                if statement.strip():
                    conn.execute(sa.text(statement))
        metadata = sa.MetaData()
        metadata.reflect(engine)
        with engine.begin() as conn:
            for name, rows in shop.rows.items():
                by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
                for row in rows:  # one executemany per column set
                    by_columns.setdefault(tuple(sorted(row)), []).append(row)
                for same in by_columns.values():
                    conn.execute(metadata.tables[name].insert(), same)
    finally:
        engine.dispose()
