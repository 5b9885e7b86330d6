"""WooCommerce (on WordPress): the preset, written against WordPress's and WooCommerce's tables.

Tables and columns as `wp-admin/includes/schema.php` (posts, postmeta, users, usermeta, terms,
term_taxonomy, term_relationships) and WooCommerce's installer and HPOS data store
(woocommerce_order_items/itemmeta, wc_customer_lookup, wc_orders, wc_order_addresses) define
them. Orders come from HPOS (`wc_orders`) when it holds orders, else from posts + postmeta.
"""

from __future__ import annotations

from cdc_sync.init.draft import Draft, header
from cdc_sync.init.facts import SchemaFacts
from cdc_sync.init.presets import block, prefix_of
from cdc_sync.init.yamltext import Entry, Raw

MARKER = "woocommerce_order_items"
COMPANIONS = ("posts", "postmeta", "users", "usermeta", "terms", "term_taxonomy",
              "term_relationships", "woocommerce_order_itemmeta")

STATUS_MAP = """\
    map: {wc-pending: pending, wc-processing: processing, wc-on-hold: on-hold,
          wc-completed: completed, wc-cancelled: cancelled, wc-refunded: refunded,
          wc-failed: failed}
    # TODO: add your plugins' own statuses to map (others are sent as other)
    default: other"""

CUSTOMERS_USERS = """
# WordPress users whose role is `customer` (the {p}capabilities entry in usermeta): shop
# managers and administrators are left out. WordPress stores user_registered in UTC.
table: {p}users
joins:
  - {table: {p}usermeta, alias: cap, on: {ID: user_id, meta_key: {const: {p}capabilities}}}
  - {table: {p}usermeta, alias: fn, on: {ID: user_id, meta_key: {const: first_name}}}
  - {table: {p}usermeta, alias: ln, on: {ID: user_id, meta_key: {const: last_name}}}
where: cap.meta_value LIKE '%"customer"%'
fields:
  email: user_email
  createdAt: {column: user_registered, timezone: UTC}
  firstName: fn.meta_value
  lastName: ln.meta_value
"""

CUSTOMERS_LOOKUP = """
# wc_customer_lookup (WooCommerce Analytics' customer table): registered customers (user_id
# set); guests there have no user_id and come from their orders instead (guest_customers).
table: {p}wc_customer_lookup
where: user_id IS NOT NULL AND email IS NOT NULL
fields:
  email: email
  createdAt: {column: date_registered, timezone: UTC}
  firstName: first_name
  lastName: last_name
"""

CATEGORIES = """
# Product categories (taxonomy product_cat) and product tags (product_tag), from the term
# tables; tags are sent as categories so segments can use them.
# TODO: drop 'product_tag' here and in products.children.categories to send categories only.
table: {p}terms
joins:
  - {table: {p}term_taxonomy, alias: tt, on: {term_id: term_id}}
where: tt.taxonomy IN ('product_cat', 'product_tag')
fields:
  id: term_id
  name: name
"""

PRODUCTS = """
# Published products (post_type product); variations become options. A variable product keeps
# one _price row per variation price: its price is the lowest.
table: {p}posts
where: post_type = 'product' AND post_status = 'publish'
cursor: post_modified_gmt
joins:
  - {table: {p}postmeta, alias: sku, on: {ID: post_id, meta_key: {const: _sku}}}
fields:
  id: ID
  name: post_title
  sku: sku.meta_value
  price:
    expression: >-
      (SELECT MIN(CAST(pm.meta_value AS DECIMAL(20,4))) FROM {p}postmeta pm
      WHERE pm.post_id = {p}posts.ID AND pm.meta_key = '_price' AND pm.meta_value <> '')
  # TODO: add url: {template: "https://YOUR-SHOP/product/{post_name}/"}
children:
  categories:
    table: {p}term_relationships
    joins:
      - {table: {p}term_taxonomy, alias: tt, on: {term_taxonomy_id: term_taxonomy_id}}
    where: tt.taxonomy IN ('product_cat', 'product_tag')
    parent_key: object_id
    value: tt.term_id
    order_by: tt.term_id
  options:
    table: {p}posts
    where: post_type = 'product_variation' AND post_status = 'publish'
    joins:
      - {table: {p}postmeta, alias: price, on: {ID: post_id, meta_key: {const: _price}}}
      - {table: {p}postmeta, alias: sku, on: {ID: post_id, meta_key: {const: _sku}}}
    parent_key: post_parent
    cursor: post_modified_gmt       # a changed variation re-reads its product
    fields:
      id: ID
      name: post_title
      price: price.meta_value
      sku: sku.meta_value
    order_by: ID
"""

ORDER_CHILDREN = """
children:
  products:
    # Line items (not shipping, fee or coupon items). _product_id is the parent product of a
    # variation, so a variable product is counted once per line.
    query: |
      SELECT i.order_item_id, i.order_id, i.order_item_name AS name,
             MAX(CASE WHEN m.meta_key = '_product_id' THEN m.meta_value END) AS product_id,
             MAX(CASE WHEN m.meta_key = '_qty' THEN m.meta_value END) AS qty,
             CAST(MAX(CASE WHEN m.meta_key = '_line_subtotal' THEN m.meta_value END)
                  AS DECIMAL(20,4))
               / NULLIF(CAST(MAX(CASE WHEN m.meta_key = '_qty' THEN m.meta_value END)
                             AS DECIMAL(20,4)), 0) AS unit_price
      FROM {p}woocommerce_order_items i
      JOIN {p}woocommerce_order_itemmeta m ON m.order_item_id = i.order_item_id
        AND m.meta_key IN ('_product_id', '_qty', '_line_subtotal')
      WHERE i.order_item_type = 'line_item'
      GROUP BY i.order_item_id, i.order_id, i.order_item_name
    parent_key: order_id
    fields:
      productId: product_id
      quantity: qty
    order_by: order_item_id
  coupons:
    table: {p}woocommerce_order_items
    where: order_item_type = 'coupon'
    parent_key: order_id
    value: order_item_name
    order_by: order_item_id
"""

ORDERS_POSTS = """
# Orders stored as posts (post_type shop_order; refunds are shop_order_refund posts and are
# not orders). Guests have _customer_user 0: their _billing_email makes them guest customers.
# TODO: a partial refund does not lower amount; a full one sets status wc-refunded.
table: {p}posts
where: post_type = 'shop_order' AND post_status NOT IN ('auto-draft', 'trash', 'wc-checkout-draft')
cursor: post_modified_gmt
joins:
  - {table: {p}postmeta, alias: email, on: {ID: post_id, meta_key: {const: _billing_email}}}
  - {table: {p}postmeta, alias: total, on: {ID: post_id, meta_key: {const: _order_total}}}
  - {table: {p}postmeta, alias: fn, on: {ID: post_id, meta_key: {const: _billing_first_name}}}
  - {table: {p}postmeta, alias: ln, on: {ID: post_id, meta_key: {const: _billing_last_name}}}
  - {table: {p}postmeta, alias: street, on: {ID: post_id, meta_key: {const: _billing_address_1}}}
  - {table: {p}postmeta, alias: city, on: {ID: post_id, meta_key: {const: _billing_city}}}
  - {table: {p}postmeta, alias: zip, on: {ID: post_id, meta_key: {const: _billing_postcode}}}
  - {table: {p}postmeta, alias: country, on: {ID: post_id, meta_key: {const: _billing_country}}}
  - {table: {p}postmeta, alias: phone, on: {ID: post_id, meta_key: {const: _billing_phone}}}
  - {table: {p}postmeta, alias: pay, on: {ID: post_id, meta_key: {const: _payment_method_title}}}
  - {table: {p}postmeta, alias: ip, on: {ID: post_id, meta_key: {const: _customer_ip_address}}}
fields:
  id: ID
  email: email.meta_value
  createdAt: {column: post_date_gmt, timezone: UTC}
  amount: total.meta_value        # with shipping and tax
  status:
    column: post_status
{status}
  billing.address: street.meta_value
  billing.city: city.meta_value
  billing.postcode: zip.meta_value
  billing.countryCode: country.meta_value
  billing.phone: phone.meta_value
  billing.paymentMethod: pay.meta_value
  ipAddress: ip.meta_value
"""

ORDERS_HPOS = """
# Orders in WooCommerce's own tables (HPOS: wc_orders, wc_order_addresses). Refunds are rows of
# type shop_order_refund and are not orders. Guests have customer_id 0: their billing_email
# makes them guest customers.
# TODO: a partial refund does not lower amount; a full one sets status wc-refunded.
table: {p}wc_orders
where: type = 'shop_order' AND status NOT IN ('auto-draft', 'trash', 'wc-checkout-draft')
cursor: date_updated_gmt
joins:
  - {table: {p}wc_order_addresses, alias: bill, on: {id: order_id, address_type: {const: billing}}}
fields:
  id: id
  email: billing_email
  createdAt: {column: date_created_gmt, timezone: UTC}
  amount: total_amount            # with shipping and tax
  status:
    column: status
{status}
  billing.address: bill.address_1
  billing.city: bill.city
  billing.postcode: bill.postcode
  billing.countryCode: bill.country
  billing.phone: bill.phone
  billing.paymentMethod: payment_method_title
  ipAddress: ip_address
"""

GUESTS = """
# Customers made from orders whose email belongs to no customer (guest checkouts).
fields:
  firstName: {first}
  lastName: {last}
"""

DELETED = """
# Products still on order lines but gone from the shop, named as on the line.
fields:
  name: name
  price: unit_price
"""


def woocommerce(facts: SchemaFacts) -> Draft | None:
    prefix = prefix_of(facts, MARKER, COMPANIONS)
    if prefix is None:
        return None
    hpos = _has_rows(facts, f"{prefix}wc_orders")
    lookup = _has_rows(facts, f"{prefix}wc_customer_lookup")
    storage = "HPOS order tables" if hpos else "orders as posts"
    platform = f"WooCommerce (table prefix {prefix!r}, {storage})"
    draft = Draft(platform, header(facts, platform, naive_utc=True))
    customers = CUSTOMERS_LOOKUP if lookup else CUSTOMERS_USERS
    orders = (ORDERS_HPOS if hpos else ORDERS_POSTS).replace("{status}", STATUS_MAP)
    names = ("bill.first_name", "bill.last_name") if hpos else ("fn.meta_value", "ln.meta_value")
    guests = GUESTS.replace("{first}", names[0]).replace("{last}", names[1])
    for key, text in (("customers", customers), ("guest_customers", guests),
                      ("categories", CATEGORIES), ("products", PRODUCTS),
                      ("deleted_products", DELETED), ("orders", orders + ORDER_CHILDREN)):
        draft.add(Entry(key, Raw(block(text, prefix))))
    return draft


def _has_rows(facts: SchemaFacts, name: str) -> bool:
    table = facts.table(name)
    return table is not None and table.rows > 0
