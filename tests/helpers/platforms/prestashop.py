"""A PrestaShop 1.7/8 shop in MariaDB: the columns the preset reads, with their real names and
types (install/data/db_structure.sql).

The default language is French (PS_LANG_DEFAULT = 2), so a mapping that assumes id_lang 1
gets English names; guest checkouts are customer rows with is_guest = 1; a product has
combinations; one ordered product was deleted since.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

from helpers.platforms.expected import Expected, ms
from helpers.platforms.woocommerce import Shop, load

DDL = """
CREATE TABLE {p}configuration (id_configuration int unsigned NOT NULL AUTO_INCREMENT,
  id_shop_group int unsigned NULL, id_shop int unsigned NULL, name varchar(254) NOT NULL,
  value text, date_add datetime NOT NULL, date_upd datetime NOT NULL,
  PRIMARY KEY (id_configuration));
CREATE TABLE {p}customer (id_customer int unsigned NOT NULL AUTO_INCREMENT, id_shop_group int
  unsigned NOT NULL DEFAULT 1, id_shop int unsigned NOT NULL DEFAULT 1, id_gender int unsigned
  NOT NULL DEFAULT 0, id_default_group int unsigned NOT NULL DEFAULT 1, id_lang int unsigned
  NULL, firstname varchar(255) NOT NULL, lastname varchar(255) NOT NULL, email varchar(255)
  NOT NULL, passwd varchar(255) NOT NULL DEFAULT '', newsletter tinyint(1) unsigned NOT NULL
  DEFAULT 0, optin tinyint(1) unsigned NOT NULL DEFAULT 0, active tinyint(1) unsigned NOT NULL
  DEFAULT 0, is_guest tinyint(1) NOT NULL DEFAULT 0, deleted tinyint(1) NOT NULL DEFAULT 0,
  date_add datetime NOT NULL, date_upd datetime NOT NULL, PRIMARY KEY (id_customer));
CREATE TABLE {p}category (id_category int unsigned NOT NULL AUTO_INCREMENT, id_parent int
  unsigned NOT NULL, id_shop_default int unsigned NOT NULL DEFAULT 1, level_depth tinyint(3)
  unsigned NOT NULL DEFAULT 0, nleft int unsigned NOT NULL DEFAULT 0, nright int unsigned NOT
  NULL DEFAULT 0, active tinyint(1) unsigned NOT NULL DEFAULT 0, date_add datetime NOT NULL,
  date_upd datetime NOT NULL, position int unsigned NOT NULL DEFAULT 0, is_root_category
  tinyint(1) NOT NULL DEFAULT 0, PRIMARY KEY (id_category));
CREATE TABLE {p}category_lang (id_category int unsigned NOT NULL, id_shop int unsigned NOT
  NULL DEFAULT 1, id_lang int unsigned NOT NULL, name varchar(128) NOT NULL, description text,
  link_rewrite varchar(128) NOT NULL, PRIMARY KEY (id_category, id_shop, id_lang));
CREATE TABLE {p}product (id_product int unsigned NOT NULL AUTO_INCREMENT, id_category_default
  int unsigned NULL, id_shop_default int unsigned NOT NULL DEFAULT 1, price decimal(20,6) NOT
  NULL DEFAULT 0, wholesale_price decimal(20,6) NOT NULL DEFAULT 0, reference varchar(64),
  active tinyint(1) unsigned NOT NULL DEFAULT 0, date_add datetime NOT NULL, date_upd datetime
  NOT NULL, product_type enum('standard','pack','virtual','combinations','') NOT NULL DEFAULT
  '', PRIMARY KEY (id_product));
CREATE TABLE {p}product_lang (id_product int unsigned NOT NULL, id_shop int unsigned NOT NULL
  DEFAULT 1, id_lang int unsigned NOT NULL, description text, description_short text,
  link_rewrite varchar(128) NOT NULL, name varchar(128) NOT NULL,
  PRIMARY KEY (id_product, id_shop, id_lang));
CREATE TABLE {p}category_product (id_category int unsigned NOT NULL, id_product int unsigned
  NOT NULL, position int unsigned NOT NULL DEFAULT 0, PRIMARY KEY (id_category, id_product));
CREATE TABLE {p}product_attribute (id_product_attribute int unsigned NOT NULL AUTO_INCREMENT,
  id_product int unsigned NOT NULL, reference varchar(64), price decimal(20,6) NOT NULL
  DEFAULT 0, quantity int NOT NULL DEFAULT 0, default_on tinyint(1) unsigned NULL,
  PRIMARY KEY (id_product_attribute));
CREATE TABLE {p}product_attribute_combination (id_attribute int unsigned NOT NULL,
  id_product_attribute int unsigned NOT NULL, PRIMARY KEY (id_attribute, id_product_attribute));
CREATE TABLE {p}attribute_lang (id_attribute int unsigned NOT NULL, id_lang int unsigned NOT
  NULL, name varchar(128) NOT NULL, PRIMARY KEY (id_attribute, id_lang));
CREATE TABLE {p}orders (id_order int unsigned NOT NULL AUTO_INCREMENT, reference varchar(9),
  id_shop_group int unsigned NOT NULL DEFAULT 1, id_shop int unsigned NOT NULL DEFAULT 1,
  id_carrier int unsigned NOT NULL DEFAULT 0, id_lang int unsigned NOT NULL, id_customer int
  unsigned NOT NULL, id_cart int unsigned NOT NULL DEFAULT 0, id_currency int unsigned NOT
  NULL DEFAULT 1, id_address_delivery int unsigned NOT NULL, id_address_invoice int unsigned
  NOT NULL, current_state int unsigned NOT NULL, payment varchar(255) NOT NULL, module
  varchar(255), total_paid decimal(20,6) NOT NULL DEFAULT 0, total_paid_tax_incl
  decimal(20,6) DEFAULT 0, total_paid_tax_excl decimal(20,6) DEFAULT 0, total_shipping
  decimal(20,6) DEFAULT 0, valid tinyint(1) unsigned NOT NULL DEFAULT 0, date_add datetime NOT
  NULL, date_upd datetime NOT NULL, PRIMARY KEY (id_order));
CREATE TABLE {p}order_detail (id_order_detail int unsigned NOT NULL AUTO_INCREMENT, id_order
  int unsigned NOT NULL, id_order_invoice int DEFAULT NULL, id_warehouse int unsigned DEFAULT
  0, id_shop int unsigned NOT NULL, product_id int unsigned NOT NULL, product_attribute_id int
  unsigned DEFAULT NULL, product_name varchar(255) NOT NULL, product_quantity int unsigned NOT
  NULL DEFAULT 0, product_price decimal(20,6) NOT NULL DEFAULT 0, product_reference
  varchar(64), unit_price_tax_incl decimal(20,6) NOT NULL DEFAULT 0, unit_price_tax_excl
  decimal(20,6) NOT NULL DEFAULT 0, PRIMARY KEY (id_order_detail));
CREATE TABLE {p}order_state_lang (id_order_state int unsigned NOT NULL, id_lang int unsigned
  NOT NULL, name varchar(64) NOT NULL, template varchar(64) NOT NULL DEFAULT '',
  PRIMARY KEY (id_order_state, id_lang));
CREATE TABLE {p}address (id_address int unsigned NOT NULL AUTO_INCREMENT, id_country int
  unsigned NOT NULL, id_state int unsigned NULL, id_customer int unsigned NOT NULL DEFAULT 0,
  alias varchar(32) NOT NULL, company varchar(255), lastname varchar(255) NOT NULL, firstname
  varchar(255) NOT NULL, address1 varchar(128) NOT NULL, address2 varchar(128), postcode
  varchar(12), city varchar(64) NOT NULL, phone varchar(32), date_add datetime NOT NULL,
  date_upd datetime NOT NULL, active tinyint(1) unsigned NOT NULL DEFAULT 1, deleted
  tinyint(1) unsigned NOT NULL DEFAULT 0, PRIMARY KEY (id_address));
CREATE TABLE {p}country (id_country int unsigned NOT NULL AUTO_INCREMENT, id_zone int unsigned
  NOT NULL DEFAULT 1, iso_code varchar(3) NOT NULL, active tinyint(1) unsigned NOT NULL
  DEFAULT 0, PRIMARY KEY (id_country));
CREATE TABLE {p}cart_rule (id_cart_rule int unsigned NOT NULL AUTO_INCREMENT, id_customer int
  unsigned NOT NULL DEFAULT 0, date_from datetime NOT NULL, date_to datetime NOT NULL,
  description text, quantity int unsigned NOT NULL DEFAULT 0, code varchar(254) NOT NULL,
  active tinyint(1) unsigned NOT NULL DEFAULT 0, PRIMARY KEY (id_cart_rule));
CREATE TABLE {p}order_cart_rule (id_order_cart_rule int unsigned NOT NULL AUTO_INCREMENT,
  id_order int unsigned NOT NULL, id_cart_rule int unsigned NOT NULL, id_order_invoice int
  unsigned DEFAULT 0, name varchar(254) NOT NULL, value decimal(17,2) NOT NULL DEFAULT 0,
  value_tax_excl decimal(17,2) NOT NULL DEFAULT 0, free_shipping tinyint(1) NOT NULL DEFAULT 0,
  deleted tinyint(1) unsigned NOT NULL DEFAULT 0, PRIMARY KEY (id_order_cart_rule));
"""

STATES = {1: ("Awaiting check payment", "En attente du paiement par chèque"),
          2: ("Payment accepted", "Paiement accepté"), 4: ("Shipped", "Expédié"),
          6: ("Canceled", "Annulé"), 7: ("Refunded", "Remboursé")}
START = datetime(2024, 2, 1, 9, 30, 0)


def build(url: str, *, prefix: str = "ps_", seed: int = 11) -> Expected:
    rng = random.Random(seed)
    shop, expected = Shop(prefix), Expected()
    shop.add("configuration", name="PS_LANG_DEFAULT", value="2", date_add=START,
             date_upd=START)
    for state, (english, french) in STATES.items():
        shop.add("order_state_lang", id_order_state=state, id_lang=1, name=english)
        shop.add("order_state_lang", id_order_state=state, id_lang=2, name=french)
    shop.add("country", id_country=8, iso_code="FR", active=1)
    shop.add("country", id_country=3, iso_code="BE", active=1)
    shop.add("cart_rule", id_cart_rule=1, date_from=START, date_to=START, code="BIENVENUE")
    shop.add("cart_rule", id_cart_rule=2, date_from=START, date_to=START, code="")  # automatic
    people = _customers(shop, expected)
    _catalog(shop, expected)
    _orders(shop, expected, rng, people)
    load(url, shop, DDL)
    return expected


def _customers(shop: Shop, expected: Expected) -> list[tuple[int, str, str, str, bool]]:
    people = []
    for id_customer in range(1, 13):
        guest, deleted = id_customer > 8, id_customer == 8
        first = ["Amélie", "Luc", "Inès"][id_customer % 3]
        last = ["Dupont", "Lefèvre"][id_customer % 2]
        email = f"client{id_customer}@exemple.fr"
        added = START + timedelta(days=id_customer)
        shop.add("customer", id_customer=id_customer, firstname=first, lastname=last,
                 email=email, newsletter=id_customer % 2, is_guest=int(guest),
                 deleted=int(deleted), active=int(not guest), date_add=added, date_upd=added)
        if not guest and not deleted:
            expected.customers[email] = {"email": email, "createdAt": ms(added),
                                         "firstName": first, "lastName": last,
                                         "subscribed": bool(id_customer % 2)}
        if not deleted:
            people.append((id_customer, email, first, last, guest))
    return people


def _catalog(shop: Shop, expected: Expected) -> None:
    for id_category, parent, depth, english, french in [
            (1, 0, 0, "Root", "Racine"), (2, 1, 1, "Home", "Accueil"),
            (3, 2, 2, "Clothes", "Vêtements"), (4, 2, 2, "Art", "Art")]:
        shop.add("category", id_category=id_category, id_parent=parent, level_depth=depth,
                 active=1, date_add=START, date_upd=START, is_root_category=int(depth == 1))
        for id_lang, name in ((1, english), (2, french)):
            shop.add("category_lang", id_category=id_category, id_lang=id_lang, name=name,
                     link_rewrite=name.lower())
        if depth >= 2:
            expected.categories[str(id_category)] = {"id": str(id_category), "name": french}
    for id_product, french, price, category in [
            (1, "T-shirt imprimé colibri", Decimal("19.120000"), 3),
            (2, "Pull imprimé colibri", Decimal("35.900000"), 3),
            (3, "Affiche encadrée", Decimal("29.000000"), 4)]:
        shop.add("product", id_product=id_product, price=price, reference=f"demo_{id_product}",
                 active=int(id_product != 3), date_add=START, date_upd=START,
                 product_type="combinations" if id_product == 1 else "standard")
        for id_lang, name in ((1, f"EN {french}"), (2, french)):
            shop.add("product_lang", id_product=id_product, id_lang=id_lang, name=name,
                     link_rewrite=f"p{id_product}")
        shop.add("category_product", id_category=category, id_product=id_product)
        expected.products[str(id_product)] = {
            "id": str(id_product), "name": french, "sku": f"demo_{id_product}", "price": price,
            "categories": [str(category)], "options": []}
    for id_attribute, english, french in [(1, "S", "S"), (2, "M", "M"), (11, "Black", "Noir")]:
        shop.add("attribute_lang", id_attribute=id_attribute, id_lang=1, name=english)
        shop.add("attribute_lang", id_attribute=id_attribute, id_lang=2, name=french)
    options = []
    for id_pa, size in ((10, 1), (11, 2)):
        shop.add("product_attribute", id_product_attribute=id_pa, id_product=1,
                 reference=f"demo_1_{id_pa}", price=Decimal("1.500000") * (id_pa - 9))
        for id_attribute in (size, 11):
            shop.add("product_attribute_combination", id_attribute=id_attribute,
                     id_product_attribute=id_pa)
        options.append({"id": str(id_pa), "sku": f"demo_1_{id_pa}",
                        "name": f"T-shirt imprimé colibri - {'S' if size == 1 else 'M'}, Noir",
                        "price": Decimal("19.12") + Decimal("1.5") * (id_pa - 9)})
    expected.products["1"]["options"] = options
    expected.products["99"] = {"id": "99", "name": "Mug ancien", "price": Decimal("9.5")}


def _orders(shop: Shop, expected: Expected, rng: random.Random,
            people: list[tuple[int, str, str, str, bool]]) -> None:
    lines_pool = [(1, "T-shirt imprimé colibri - S, Noir", Decimal("20.62"), 10),
                  (2, "Pull imprimé colibri", Decimal("35.9"), None),
                  (3, "Affiche encadrée", Decimal("29"), None)]
    for id_order in range(1, 21):
        id_customer, email, first, last, guest = rng.choice(people)
        when = START + timedelta(days=15 + id_order, hours=rng.randrange(8))
        state = rng.choice(list(STATES))
        chosen = rng.sample(lines_pool, rng.randint(1, 2))
        if id_order == 5:
            chosen.append((99, "Mug ancien", Decimal("9.5"), None))
        lines = [(p, n, price, attribute, rng.randint(1, 2)) for p, n, price, attribute in chosen]
        total = sum((price * qty for _, _, price, _, qty in lines), Decimal("7"))
        id_country, iso = rng.choice([(8, "FR"), (3, "BE")])
        shop.add("address", id_address=100 + id_order, id_country=id_country,
                 id_customer=id_customer, alias="Mon adresse", firstname=first, lastname=last,
                 address1=f"{id_order} rue de la Paix", postcode="75002", city="Paris",
                 phone=f"01 23 45 {id_order:02d}", date_add=when, date_upd=when)
        shop.add("orders", id_order=id_order, reference=f"REF{id_order:06d}", id_lang=2,
                 id_customer=id_customer, id_address_delivery=100 + id_order,
                 id_address_invoice=100 + id_order, current_state=state,
                 payment="Virement bancaire", module="ps_wirepayment", total_paid=total,
                 total_paid_tax_incl=total, total_paid_tax_excl=total, valid=1,
                 date_add=when, date_upd=when)
        for product_id, name, price, attribute, qty in lines:
            shop.add("order_detail", id_order=id_order, id_shop=1, product_id=product_id,
                     product_attribute_id=attribute, product_name=name, product_quantity=qty,
                     product_price=price, unit_price_tax_incl=price, unit_price_tax_excl=price)
        coupons = []
        if id_order % 3 == 0:
            shop.add("order_cart_rule", id_order=id_order, id_cart_rule=1, name="Bienvenue")
            coupons = ["BIENVENUE"]
        if id_order % 4 == 0:  # an automatic rule without a code is not a coupon
            shop.add("order_cart_rule", id_order=id_order, id_cart_rule=2, name="Livraison")
        expected.orders[str(id_order)] = {
            "id": str(id_order), "email": email, "createdAt": ms(when), "amount": total,
            "status": STATES[state][1], "coupons": coupons,
            "products": sorted((str(p), q) for p, _, _, _, q in lines),
            "billing": {"address": f"{id_order} rue de la Paix", "city": "Paris",
                        "postcode": "75002", "countryCode": iso,
                        "phone": f"01 23 45 {id_order:02d}",
                        "paymentMethod": "Virement bancaire"}}
        known = expected.customers.get(email)
        if guest and (known is None or known["createdAt"] > ms(when)):
            expected.customers[email] = {"email": email, "createdAt": ms(when),
                                         "firstName": first, "lastName": last}
