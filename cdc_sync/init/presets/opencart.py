"""OpenCart 3 and 4: the preset, written against OpenCart's table definitions (install/
opencart.sql in 3.x, system/helper/db_schema.php in 4.x).

OpenCart stores names HTML-escaped (`Tables &amp; Desks`), so names are read with
`decode: html`. Texts are taken in the store's default language (the `config_language`
setting of store 0), looked up by code. Orders with status 0 are abandoned checkouts, not
orders.
"""

from __future__ import annotations

from cdc_sync.init.draft import Draft, header
from cdc_sync.init.facts import SchemaFacts
from cdc_sync.init.presets import block, prefix_of
from cdc_sync.init.yamltext import Entry, Raw

MARKER = "order_product"
COMPANIONS = ("order", "product", "product_description", "category_description",
              "customer", "order_status", "setting", "language", "product_to_category")

LANGUAGE = ("JOIN {p}language l ON l.code = (SELECT s.value FROM {p}setting s\n"
            "    WHERE s.store_id = 0 AND s.`key` = 'config_language')")

CUSTOMERS = """
# Registered customers. OpenCart escapes HTML in names: decode: html restores them.
table: {p}customer
fields:
  email: email
  createdAt: date_added
  firstName: {column: firstname, decode: html}
  lastName: {column: lastname, decode: html}
  subscribed: newsletter
"""

CATEGORIES = f"""
# Categories named in the store's default language (setting config_language of store 0).
query: |
  SELECT c.category_id, d.name
  FROM {{p}}category c
  {LANGUAGE}
  LEFT JOIN {{p}}category_description d
    ON d.category_id = c.category_id AND d.language_id = l.language_id
key: category_id
fields:
  id: category_id
  name: {{column: name, decode: html}}
"""

PRODUCTS = f"""
# Every product (disabled ones too: old orders still name them), in the default language.
# OpenCart's "Model" is the product code shown everywhere; it is sent as the sku.
# TODO: add url: {{template: "https://YOUR-SHOP/index.php?route=product/product&product_id=
#   {{product_id}}"}} (on one line)
query: |
  SELECT p.product_id, p.model, p.price, p.date_modified, d.name
  FROM {{p}}product p
  {LANGUAGE}
  LEFT JOIN {{p}}product_description d
    ON d.product_id = p.product_id AND d.language_id = l.language_id
key: product_id
cursor: date_modified
fields:
  id: product_id
  name: {{column: name, decode: html}}
  sku: model
  price: price                      # without tax
children:
  categories:
    table: {{p}}product_to_category
    parent_key: product_id
    value: category_id
    order_by: category_id
"""

ORDERS = """
# Orders (order_status_id 0 marks abandoned checkouts, which are not orders). The status is
# its name in the store's default language.
table: {p}order
where: order_status_id > 0
cursor: date_modified
joins:
  - {table: {p}country, alias: country, on: {payment_country_id: country_id}}
fields:
  id: order_id
  email: email
  createdAt: date_added
  amount: total                     # with shipping and tax
  status:
    expression: >-
      (SELECT os.name FROM {p}order_status os
      WHERE os.order_status_id = {p}order.order_status_id AND os.language_id = (
        SELECT l.language_id FROM {p}language l WHERE l.code = (SELECT s.value
        FROM {p}setting s WHERE s.store_id = 0 AND s.`key` = 'config_language')))
  billing.address: {column: payment_address_1, decode: html}
  billing.city: {column: payment_city, decode: html}
  billing.postcode: payment_postcode
  billing.countryCode: country.iso_code_2
  billing.phone: telephone
  billing.paymentMethod: {payment}
  ipAddress: ip
children:
  products:
    table: {p}order_product
    parent_key: order_id
    cursor: {column: order_product_id, kind: append}   # a new line re-reads its order
    fields:
      productId: product_id
      quantity: quantity
    order_by: order_product_id
"""

COUPONS = """
  coupons:
    query: |
      SELECT h.order_id, c.code
      FROM {p}coupon_history h JOIN {p}coupon c ON c.coupon_id = h.coupon_id
    parent_key: order_id
    value: code
    order_by: code
"""

GUESTS = """
# Customers made from guest orders (customer_id 0), named as on the order.
fields:
  firstName: {column: firstname, decode: html}
  lastName: {column: lastname, decode: html}
"""

DELETED = """
# Products still on order lines but gone from the catalog, named as on the line.
fields:
  name: {column: name, decode: html}
  price: price
"""


def opencart(facts: SchemaFacts) -> Draft | None:
    prefix = prefix_of(facts, MARKER, COMPANIONS)
    if prefix is None or facts.table(f"{prefix}order") is None:
        return None
    products = facts.table(f"{prefix}product")
    version = 4 if products is not None and products.has("master_id") else 3
    platform = f"OpenCart {version} (table prefix {prefix!r})"
    draft = Draft(platform, header(facts, platform))
    # OpenCart 4 keeps the payment method as JSON ({"name": ..., "code": ...}).
    payment = ("{expression: \"JSON_UNQUOTE(JSON_EXTRACT(payment_method, '$.name'))\"}"
               if version == 4 else "payment_method")
    orders = ORDERS.replace("{payment}", payment)
    if {f"{prefix}coupon", f"{prefix}coupon_history"} <= facts.names():
        orders += COUPONS
    for key, text in (("customers", CUSTOMERS), ("guest_customers", GUESTS),
                      ("categories", CATEGORIES), ("products", PRODUCTS),
                      ("deleted_products", DELETED), ("orders", orders)):
        draft.add(Entry(key, Raw(block(text, prefix))))
    return draft
