"""PrestaShop 1.7 and 8: the preset, written against PrestaShop's table definitions
(install/data/db_structure.sql).

Texts (product, category and order state names) are taken in the shop's default language,
the PS_LANG_DEFAULT configuration value, never a fixed id_lang. PrestaShop keeps guest
checkouts as customer rows with is_guest = 1: they are left out of customers and come back as
guest customers made from their orders.
"""

from __future__ import annotations

from cdc_sync.init.draft import Draft, header
from cdc_sync.init.facts import SchemaFacts
from cdc_sync.init.presets import block, prefix_of
from cdc_sync.init.yamltext import Entry, Raw

MARKER = "order_detail"
COMPANIONS = ("orders", "customer", "product", "product_lang", "category_lang",
              "category_product", "order_state_lang", "configuration", "address", "country")

# One line: it is inserted into YAML blocks at several indentations.
DEFAULT_LANG = ("(SELECT CAST(cf.value AS UNSIGNED) FROM {p}configuration cf "
                "WHERE cf.name = 'PS_LANG_DEFAULT' ORDER BY cf.id_shop, cf.id_configuration "
                "LIMIT 1)")

CUSTOMERS = """
# Registered customers (guest checkouts are customer rows with is_guest = 1: they come back as
# guest customers from their orders; deleted customers are left out).
table: {p}customer
where: is_guest = 0 AND deleted = 0
cursor: date_upd
fields:
  email: email
  createdAt: date_add
  firstName: firstname
  lastName: lastname
  subscribed: newsletter
"""

CATEGORIES = f"""
# Categories below Home (level_depth 2 and deeper), named in the default language.
query: |
  SELECT c.id_category, cl.name
  FROM {{p}}category c
  LEFT JOIN {{p}}category_lang cl ON cl.id_category = c.id_category
    AND cl.id_shop = c.id_shop_default AND cl.id_lang = {DEFAULT_LANG}
  WHERE c.level_depth >= 2
key: id_category
fields:
  id: id_category
  name: name
"""

PRODUCTS = f"""
# Every product (inactive ones too: old orders still name them), named in the default
# language; price without tax. Combinations are the product's options.
# TODO: add url: {{template: "https://YOUR-SHOP/index.php?id_product={{id_product}}
#   &controller=product"}} (on one line)
query: |
  SELECT p.id_product, p.reference, p.price, p.date_upd, pl.name
  FROM {{p}}product p
  LEFT JOIN {{p}}product_lang pl ON pl.id_product = p.id_product
    AND pl.id_shop = p.id_shop_default AND pl.id_lang = {DEFAULT_LANG}
key: id_product
cursor: date_upd
fields:
  id: id_product
  name: name
  sku: reference
  price: price
children:
  categories:
    table: {{p}}category_product
    parent_key: id_product
    value: id_category
    order_by: id_category
  options:
    query: |
      SELECT pa.id_product, pa.id_product_attribute, pa.reference,
             p.price + pa.price AS price,
             CONCAT(pl.name, ' - ', GROUP_CONCAT(al.name ORDER BY al.id_attribute SEPARATOR ', '))
               AS name
      FROM {{p}}product_attribute pa
      JOIN {{p}}product p ON p.id_product = pa.id_product
      LEFT JOIN {{p}}product_lang pl ON pl.id_product = p.id_product
        AND pl.id_shop = p.id_shop_default AND pl.id_lang = {DEFAULT_LANG}
      LEFT JOIN {{p}}product_attribute_combination pac
        ON pac.id_product_attribute = pa.id_product_attribute
      LEFT JOIN {{p}}attribute_lang al ON al.id_attribute = pac.id_attribute
        AND al.id_lang = {DEFAULT_LANG}
      GROUP BY pa.id_product, pa.id_product_attribute, pa.reference, p.price, pa.price, pl.name
    parent_key: id_product
    fields:
      id: id_product_attribute
      name: name
      sku: reference
      price: price
    order_by: id_product_attribute
"""

ORDERS = f"""
# Orders: the customer's email through id_customer (guests included); the status is the
# current state's name in the default language; amount is total_paid_tax_incl.
table: {{p}}orders
cursor: date_upd
joins:
  - {{table: {{p}}customer, alias: cu, on: {{id_customer: id_customer}}}}
  - {{table: {{p}}address, alias: inv, on: {{id_address_invoice: id_address}}}}
  - {{table: {{p}}country, alias: co, on: {{inv.id_country: id_country}}}}
fields:
  id: id_order
  email: cu.email
  createdAt: date_add
  amount: total_paid_tax_incl       # with shipping and tax
  status:
    expression: >-
      (SELECT osl.name FROM {{p}}order_state_lang osl
      WHERE osl.id_order_state = {{p}}orders.current_state AND osl.id_lang = {DEFAULT_LANG})
  billing.address: inv.address1
  billing.city: inv.city
  billing.postcode: inv.postcode
  billing.countryCode: co.iso_code
  billing.phone: inv.phone
  billing.paymentMethod: payment
children:
  products:
    # One line per product; a combination's line names its product (counted once).
    table: {{p}}order_detail
    parent_key: id_order
    cursor: {{column: id_order_detail, kind: append}}   # a new line re-reads its order
    fields:
      productId: product_id
      quantity: product_quantity
    order_by: id_order_detail
  coupons:
    query: |
      SELECT ocr.id_order, cr.code
      FROM {{p}}order_cart_rule ocr JOIN {{p}}cart_rule cr ON cr.id_cart_rule = ocr.id_cart_rule
      WHERE cr.code <> ''
    parent_key: id_order
    value: code
    order_by: code
"""

GUESTS = """
# Customers made from orders whose email belongs to no registered customer (guest checkouts).
fields:
  firstName: cu.firstname
  lastName: cu.lastname
"""

DELETED = """
# Products still on order lines but gone from the catalog, named as on the line.
fields:
  name: product_name
  price: unit_price_tax_excl
"""


def prestashop(facts: SchemaFacts) -> Draft | None:
    prefix = prefix_of(facts, MARKER, COMPANIONS)
    if prefix is None:
        return None
    platform = f"PrestaShop (table prefix {prefix!r})"
    draft = Draft(platform, header(facts, platform))
    for key, text in (("customers", CUSTOMERS), ("guest_customers", GUESTS),
                      ("categories", CATEGORIES), ("products", PRODUCTS),
                      ("deleted_products", DELETED), ("orders", ORDERS)):
        draft.add(Entry(key, Raw(block(text, prefix))))
    return draft
