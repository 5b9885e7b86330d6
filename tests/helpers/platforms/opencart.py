"""An OpenCart 3 or 4 shop in MariaDB: the columns the preset reads, with their real names and
types (install/opencart.sql in 3.x, system/helper/db_schema.php in 4.x).

Names are stored HTML-escaped, as OpenCart stores them. The default language is German
(language_id 2), so a mapping that assumes language 1 gets English names; abandoned checkouts
have order_status_id 0.
"""

from __future__ import annotations

import html
import random
from datetime import datetime, timedelta
from decimal import Decimal

from helpers.platforms.expected import Expected, ms
from helpers.platforms.woocommerce import Shop, load


def _ddl(version: int) -> str:
    master = "master_id int(11) NOT NULL DEFAULT 0, variant text, override text," if (
        version == 4) else ""
    payment = "payment_method text NOT NULL" if version == 4 else (
        "payment_method varchar(128) NOT NULL, payment_code varchar(128) NOT NULL DEFAULT ''")
    return f"""
CREATE TABLE {{p}}language (language_id int(11) NOT NULL AUTO_INCREMENT, name varchar(32) NOT
  NULL, code varchar(5) NOT NULL, locale varchar(255) NOT NULL, directory varchar(32) NOT NULL
  DEFAULT '', sort_order int(3) NOT NULL DEFAULT 0, status tinyint(1) NOT NULL,
  PRIMARY KEY (language_id));
CREATE TABLE {{p}}setting (setting_id int(11) NOT NULL AUTO_INCREMENT, store_id int(11) NOT
  NULL DEFAULT 0, code varchar(128) NOT NULL, `key` varchar(128) NOT NULL, value text NOT
  NULL, serialized tinyint(1) NOT NULL DEFAULT 0, PRIMARY KEY (setting_id));
CREATE TABLE {{p}}customer (customer_id int(11) NOT NULL AUTO_INCREMENT, customer_group_id
  int(11) NOT NULL DEFAULT 1, store_id int(11) NOT NULL DEFAULT 0, language_id int(11) NOT
  NULL DEFAULT 1, firstname varchar(32) NOT NULL, lastname varchar(32) NOT NULL, email
  varchar(96) NOT NULL, telephone varchar(32) NOT NULL DEFAULT '', newsletter tinyint(1) NOT
  NULL DEFAULT 0, status tinyint(1) NOT NULL DEFAULT 1, date_added datetime NOT NULL,
  PRIMARY KEY (customer_id));
CREATE TABLE {{p}}category (category_id int(11) NOT NULL AUTO_INCREMENT, image varchar(255),
  parent_id int(11) NOT NULL DEFAULT 0, top tinyint(1) NOT NULL DEFAULT 0, `column` int(3)
  NOT NULL DEFAULT 1, sort_order int(3) NOT NULL DEFAULT 0, status tinyint(1) NOT NULL,
  date_added datetime NOT NULL, date_modified datetime NOT NULL, PRIMARY KEY (category_id));
CREATE TABLE {{p}}category_description (category_id int(11) NOT NULL, language_id int(11) NOT
  NULL, name varchar(255) NOT NULL, description text NOT NULL, meta_title varchar(255) NOT
  NULL DEFAULT '', PRIMARY KEY (category_id, language_id));
CREATE TABLE {{p}}product (product_id int(11) NOT NULL AUTO_INCREMENT, {master} model
  varchar(64) NOT NULL, sku varchar(64) NOT NULL DEFAULT '', quantity int(4) NOT NULL
  DEFAULT 0, image varchar(255), price decimal(15,4) NOT NULL DEFAULT 0, status tinyint(1)
  NOT NULL DEFAULT 0, date_added datetime NOT NULL, date_modified datetime NOT NULL,
  PRIMARY KEY (product_id));
CREATE TABLE {{p}}product_description (product_id int(11) NOT NULL, language_id int(11) NOT
  NULL, name varchar(255) NOT NULL, description text NOT NULL, tag text NOT NULL, meta_title
  varchar(255) NOT NULL DEFAULT '', PRIMARY KEY (product_id, language_id));
CREATE TABLE {{p}}product_to_category (product_id int(11) NOT NULL, category_id int(11) NOT
  NULL, PRIMARY KEY (product_id, category_id));
CREATE TABLE {{p}}order_status (order_status_id int(11) NOT NULL, language_id int(11) NOT
  NULL, name varchar(32) NOT NULL, PRIMARY KEY (order_status_id, language_id));
CREATE TABLE {{p}}country (country_id int(11) NOT NULL AUTO_INCREMENT, name varchar(128) NOT
  NULL, iso_code_2 varchar(2) NOT NULL, iso_code_3 varchar(3) NOT NULL, status tinyint(1) NOT
  NULL DEFAULT 1, PRIMARY KEY (country_id));
CREATE TABLE {{p}}order (order_id int(11) NOT NULL AUTO_INCREMENT, invoice_no int(11) NOT NULL
  DEFAULT 0, invoice_prefix varchar(26) NOT NULL DEFAULT '', store_id int(11) NOT NULL
  DEFAULT 0, store_name varchar(64) NOT NULL DEFAULT '', customer_id int(11) NOT NULL DEFAULT
  0, customer_group_id int(11) NOT NULL DEFAULT 0, firstname varchar(32) NOT NULL, lastname
  varchar(32) NOT NULL, email varchar(96) NOT NULL, telephone varchar(32) NOT NULL,
  payment_firstname varchar(32) NOT NULL, payment_lastname varchar(32) NOT NULL,
  payment_address_1 varchar(128) NOT NULL, payment_city varchar(128) NOT NULL,
  payment_postcode varchar(10) NOT NULL, payment_country varchar(128) NOT NULL,
  payment_country_id int(11) NOT NULL, {payment}, total decimal(15,4) NOT NULL DEFAULT 0,
  order_status_id int(11) NOT NULL DEFAULT 0, language_id int(11) NOT NULL, currency_code
  varchar(3) NOT NULL, ip varchar(40) NOT NULL, date_added datetime NOT NULL, date_modified
  datetime NOT NULL, PRIMARY KEY (order_id));
CREATE TABLE {{p}}order_product (order_product_id int(11) NOT NULL AUTO_INCREMENT, order_id
  int(11) NOT NULL, product_id int(11) NOT NULL, name varchar(255) NOT NULL, model varchar(64)
  NOT NULL, quantity int(4) NOT NULL, price decimal(15,4) NOT NULL DEFAULT 0, total
  decimal(15,4) NOT NULL DEFAULT 0, tax decimal(15,4) NOT NULL DEFAULT 0, reward int(8) NOT
  NULL DEFAULT 0, PRIMARY KEY (order_product_id));
CREATE TABLE {{p}}coupon (coupon_id int(11) NOT NULL AUTO_INCREMENT, name varchar(128) NOT
  NULL, code varchar(20) NOT NULL, type char(1) NOT NULL, discount decimal(15,4) NOT NULL,
  date_added datetime NOT NULL, PRIMARY KEY (coupon_id));
CREATE TABLE {{p}}coupon_history (coupon_history_id int(11) NOT NULL AUTO_INCREMENT,
  coupon_id int(11) NOT NULL, order_id int(11) NOT NULL, customer_id int(11) NOT NULL,
  amount decimal(15,4) NOT NULL, date_added datetime NOT NULL,
  PRIMARY KEY (coupon_history_id));
"""


STATUSES = {1: ("Pending", "Wartend"), 2: ("Processing", "In Bearbeitung"),
            5: ("Complete", "Komplett"), 7: ("Canceled", "Storniert"),
            11: ("Refunded", "Erstattet")}
START = datetime(2024, 5, 1, 10, 0, 0)


def _esc(text: str) -> str:
    """How OpenCart stores text it was given (htmlspecialchars, quotes included)."""
    return html.escape(text, quote=True).replace("&#x27;", "&#039;")


def build(url: str, *, version: int = 3, prefix: str = "oc_", seed: int = 9) -> Expected:
    rng = random.Random(seed)
    shop, expected = Shop(prefix), Expected()
    shop.add("language", language_id=1, name="English", code="en-gb", locale="en", status=1)
    shop.add("language", language_id=2, name="Deutsch", code="de-de", locale="de", status=1)
    shop.add("setting", store_id=0, code="config", key="config_language", value="de-de")
    shop.add("setting", store_id=1, code="config", key="config_language", value="en-gb")
    for status_id, (english, german) in STATUSES.items():
        shop.add("order_status", order_status_id=status_id, language_id=1, name=english)
        shop.add("order_status", order_status_id=status_id, language_id=2, name=german)
    shop.add("country", country_id=81, name="Germany", iso_code_2="DE", iso_code_3="DEU")
    shop.add("country", country_id=14, name="Austria", iso_code_2="AT", iso_code_3="AUT")
    shop.add("coupon", coupon_id=1, name="-10%", code="WINTER10", type="P", discount=10,
             date_added=START)
    customers = _customers(shop, expected, rng)
    _catalog(shop, expected, rng)
    _orders(shop, expected, rng, customers, version)
    load(url, shop, _ddl(version))
    return expected


def _customers(shop: Shop, expected: Expected,
               rng: random.Random) -> list[tuple[int, str, str, str]]:
    found = []
    for customer_id in range(1, 9):
        first, last = rng.choice(["Jörg", "Anne-Marie", "Luca"]), rng.choice(["O'Brien", "Groß"])
        email = f"kunde{customer_id}@example.de"
        added = START + timedelta(days=customer_id)
        newsletter = customer_id % 2
        shop.add("customer", customer_id=customer_id, firstname=_esc(first),
                 lastname=_esc(last), email=email, newsletter=newsletter, date_added=added)
        expected.customers[email] = {"email": email, "createdAt": ms(added), "firstName": first,
                                     "lastName": last, "subscribed": bool(newsletter)}
        found.append((customer_id, email, first, last))
    return found


PRODUCTS = [(40, "iPhone & Case", Decimal("101.0000")),
            (41, 'Monitor 27" "Pro"', Decimal("199.9900")),
            (42, "Kid's Bike", Decimal("88.5000")), (43, "Tea <Green>", Decimal("4.2000"))]


def _catalog(shop: Shop, expected: Expected, rng: random.Random) -> None:
    for category_id, (english, german) in {20: ("Desktops & PCs", "Desktops & PCs"),
                                           24: ("Phones", "Telefone & Zubehör")}.items():
        shop.add("category", category_id=category_id, status=1, date_added=START,
                 date_modified=START)
        for language_id, name in ((1, english), (2, german)):
            shop.add("category_description", category_id=category_id, language_id=language_id,
                     name=_esc(name), description="")
        expected.categories[str(category_id)] = {"id": str(category_id), "name": german}
    for product_id, name, price in PRODUCTS:
        shop.add("product", product_id=product_id, model=f"Product {product_id}", price=price,
                 status=1 if product_id != 43 else 0, date_added=START, date_modified=START)
        for language_id, text in ((1, name), (2, f"{name} (DE)")):
            shop.add("product_description", product_id=product_id, language_id=language_id,
                     name=_esc(text), description="", tag="")
        categories = sorted(rng.sample([20, 24], rng.randint(1, 2)))
        for category_id in categories:
            shop.add("product_to_category", product_id=product_id, category_id=category_id)
        expected.products[str(product_id)] = {
            "id": str(product_id), "name": f"{name} (DE)", "sku": f"Product {product_id}",
            "price": price, "categories": [str(c) for c in categories]}
    expected.products["30"] = {"id": "30", "name": "Canon EOS 5D & Lens",
                               "price": Decimal("80.0000")}


def _orders(shop: Shop, expected: Expected, rng: random.Random,
            customers: list[tuple[int, str, str, str]], version: int) -> None:
    guests = [(0, f"gast{i}@example.at", "Gast", f"Nummer {i}") for i in range(3)]
    for order_id in range(1, 26):
        customer_id, email, first, last = rng.choice(customers if order_id % 3 else guests)
        when = START + timedelta(days=10 + order_id, hours=rng.randrange(12))
        status = 0 if order_id == 6 else rng.choice(list(STATUSES))
        lines = [(p, n, price, rng.randint(1, 3)) for p, n, price in
                 rng.sample(PRODUCTS, rng.randint(1, 2))]
        if order_id == 9:  # a product deleted since
            lines.append((30, "Canon EOS 5D & Lens", Decimal("80.0000"), 1))
        total = sum((price * qty for _, _, price, qty in lines), Decimal("5.0000"))
        country = rng.choice([(81, "DE"), (14, "AT")])
        method = "Cash On Delivery"
        stored = (f'{{"name":"{method}","code":"cod.cod"}}' if version == 4 else method)
        extra = {} if version == 4 else {"payment_code": "cod"}
        shop.add("order", order_id=order_id, customer_id=customer_id, firstname=_esc(first),
                 lastname=_esc(last), email=email, telephone=f"+49 30 {order_id:04d}",
                 payment_firstname=_esc(first), payment_lastname=_esc(last),
                 payment_address_1=_esc(f"Hauptstraße {order_id} & Hof"),
                 payment_city="Köln", payment_postcode="50667", payment_country="Germany",
                 payment_country_id=country[0], payment_method=stored, total=total,
                 order_status_id=status, language_id=2, currency_code="EUR",
                 ip=f"198.51.100.{order_id}", date_added=when, date_modified=when, **extra)
        for product_id, name, price, qty in lines:
            shop.add("order_product", order_id=order_id, product_id=product_id,
                     name=_esc(name), model=f"Product {product_id}", quantity=qty, price=price,
                     total=price * qty)
        coupons = []
        if order_id % 4 == 0:
            shop.add("coupon_history", coupon_id=1, order_id=order_id, customer_id=customer_id,
                     amount=-1, date_added=when)
            coupons = ["WINTER10"]
        if status == 0:
            continue
        expected.orders[str(order_id)] = {
            "id": str(order_id), "email": email, "createdAt": ms(when), "amount": total,
            "status": STATUSES[status][1], "coupons": coupons,
            "ipAddress": f"198.51.100.{order_id}",
            "products": sorted((str(p), q) for p, _, _, q in lines),
            "billing": {"address": f"Hauptstraße {order_id} & Hof", "city": "Köln",
                        "postcode": "50667", "countryCode": country[1],
                        "phone": f"+49 30 {order_id:04d}", "paymentMethod": method}}
        known = expected.customers.get(email)
        if customer_id == 0 and (known is None or known["createdAt"] > ms(when)):
            expected.customers[email] = {"email": email, "createdAt": ms(when),
                                         "firstName": first, "lastName": last}
