"""Magento 2 (Open Source and Commerce) and Magento 1 / OpenMage: the preset.

Tables and columns as Magento's declarative schemas (app/code/Magento/*/etc/db_schema.xml)
and OpenMage's install scripts define them. EAV attribute ids differ between installations,
so every attribute is looked up by its code (and entity type code), never by number; values
are the admin store view's (store_id 0), the defaults every store view starts from. Commerce
editions key EAV values by `row_id` (content staging): the row valid now is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdc_sync.init.draft import Draft, header
from cdc_sync.init.facts import SchemaFacts
from cdc_sync.init.presets import block, prefix_of
from cdc_sync.init.yamltext import Entry, Raw


@dataclass(frozen=True)
class Edition:
    version: int  # 1 or 2
    prefix: str
    link: str  # entity_id, or row_id in Commerce (staging) editions
    orders: str  # sales_order (2) or sales_flat_order (1)

    @property
    def label(self) -> str:
        name = "Magento 2" if self.version == 2 else "Magento 1 / OpenMage"
        staged = ", Commerce edition: EAV by row_id" if self.link == "row_id" else ""
        return f"{name} (table prefix {self.prefix!r}{staged})"


def edition_of(facts: SchemaFacts) -> Edition | None:
    companions = ("catalog_product_entity", "eav_attribute", "eav_entity_type",
                  "catalog_category_product", "customer_entity")
    for version, orders in ((2, "sales_order"), (1, "sales_flat_order")):
        prefix = prefix_of(facts, f"{orders}_item", (orders, *companions))
        if prefix is not None:
            products = facts.table(f"{prefix}catalog_product_entity")
            staged = products is not None and products.has("row_id")
            return Edition(version, prefix, "row_id" if staged else "entity_id", orders)
    return None


def _now(alias: str, edition: Edition) -> str:
    """The condition picking the version of a staged row valid now (Commerce only)."""
    if edition.link != "row_id":
        return "1 = 1"
    return f"{alias}.created_in <= UNIX_TIMESTAMP() AND {alias}.updated_in > UNIX_TIMESTAMP()"


def _attribute(alias: str, code: str, kind: str, table: str, edition: Edition, *,
               store_views: bool = True) -> str:
    """LEFT JOINs reading attribute `code` of entity `alias` in the admin store view (the
    entity type row is joined as `et`, so the attribute is found by code, never by id).
    `store_views=False` for value tables without a store_id (customer EAV)."""
    link = edition.link
    store = f" AND v_{code}.store_id = 0" if store_views else ""
    return (f"LEFT JOIN {{p}}eav_attribute a_{code} ON a_{code}.entity_type_id = et"
            f".entity_type_id AND a_{code}.attribute_code = '{code}'\n"
            f"LEFT JOIN {{p}}{table}_{kind} v_{code} ON v_{code}.{link} = {alias}.{link}\n"
            f"  AND v_{code}.attribute_id = a_{code}.attribute_id{store}")


def _products(edition: Edition) -> str:
    name = _attribute("e", "name", "varchar", "catalog_product_entity", edition)
    price = _attribute("e", "price", "decimal", "catalog_product_entity", edition)
    sql = (f"SELECT e.entity_id, e.sku, e.updated_at, v_name.value AS name, "
           f"v_price.value AS price\nFROM {{p}}catalog_product_entity e\n"
           f"JOIN {{p}}eav_entity_type et ON et.entity_type_code = 'catalog_product'\n"
           f"{name}\n{price}\n"
           f"WHERE {_now('e', edition)} AND NOT EXISTS (SELECT 1 FROM "
           f"{{p}}catalog_product_super_link l\n  WHERE l.product_id = e.entity_id)")
    options = _options(edition)
    return f"""
# Products with name and price from EAV (attribute ids looked up by code, admin store view 0).
# The simple products a configurable one is made of are its options, not products.
# TODO: add url: {{template: "https://YOUR-SHOP/{{url_key}}.html"}} (read url_key like name)
query: |
{_indent(sql, 2)}
key: entity_id
cursor: updated_at
fields:
  id: entity_id
  sku: sku
  name: name
  price: price
children:
  categories:
    table: {{p}}catalog_category_product
    parent_key: product_id
    cursor: {{column: entity_id, kind: append}}   # a new category link re-reads its product
    value: category_id
    order_by: category_id
  options:
    query: |
{_indent(options, 6)}
    parent_key: parent_entity_id
    cursor: updated_at              # a changed simple product re-reads its configurable one
    fields:
      id: entity_id
      sku: sku
      name: name
      price: price
    order_by: entity_id
"""


def _options(edition: Edition) -> str:
    name = _attribute("c", "name", "varchar", "catalog_product_entity", edition)
    price = _attribute("c", "price", "decimal", "catalog_product_entity", edition)
    return (f"SELECT p.entity_id AS parent_entity_id, c.entity_id, c.sku, c.updated_at, "
            f"v_name.value AS name, v_price.value AS price\n"
            f"FROM {{p}}catalog_product_super_link l\n"
            f"JOIN {{p}}catalog_product_entity p ON p.{edition.link} = l.parent_id "
            f"AND {_now('p', edition)}\n"
            f"JOIN {{p}}catalog_product_entity c ON c.entity_id = l.product_id "
            f"AND {_now('c', edition)}\n"
            f"JOIN {{p}}eav_entity_type et ON et.entity_type_code = 'catalog_product'\n"
            f"{name}\n{price}")


def _categories(edition: Edition) -> str:
    name = _attribute("e", "name", "varchar", "catalog_category_entity", edition)
    sql = (f"SELECT e.entity_id, v_name.value AS name\nFROM {{p}}catalog_category_entity e\n"
           f"JOIN {{p}}eav_entity_type et ON et.entity_type_code = 'catalog_category'\n"
           f"{name}\nWHERE e.level >= 2 AND {_now('e', edition)}")
    return f"""
# Categories below the root catalogs (level 2 and deeper), named in the admin store view.
query: |
{_indent(sql, 2)}
key: entity_id
fields:
  id: entity_id
  name: name
"""


def _customers(edition: Edition) -> str:
    if edition.version == 2:
        return """
# Registered customers; Magento 2 keeps their names on customer_entity itself.
table: {p}customer_entity
cursor: updated_at
fields:
  email: email
  createdAt: created_at
  firstName: firstname
  lastName: lastname
"""
    first = _attribute("e", "firstname", "varchar", "customer_entity", edition,
                       store_views=False)
    last = _attribute("e", "lastname", "varchar", "customer_entity", edition,
                      store_views=False)
    sql = (f"SELECT e.entity_id, e.email, e.created_at, e.updated_at, "
           f"v_firstname.value AS firstname, v_lastname.value AS lastname\n"
           f"FROM {{p}}customer_entity e\n"
           f"JOIN {{p}}eav_entity_type et ON et.entity_type_code = 'customer'\n"
           f"{first}\n{last}")
    return f"""
# Registered customers; Magento 1 keeps their names in EAV (ids looked up by code).
query: |
{_indent(sql, 2)}
key: entity_id
cursor: updated_at
fields:
  email: email
  createdAt: created_at
  firstName: firstname
  lastName: lastname
"""


def _orders(edition: Edition) -> str:
    orders = edition.orders
    return f"""
# Orders: the number customers see (increment_id) is the id. Statuses are Magento's codes
# (pending, processing, complete, closed = refunded, canceled, holded).
# TODO: map your own order statuses if you want other names in Metrilo.
table: {{p}}{orders}
cursor: updated_at
joins:
  - {{table: {{p}}{orders}_address, alias: bill, on: {{billing_address_id: entity_id}}}}
  - {{table: {{p}}{orders}_payment, alias: pay, on: {{entity_id: parent_id}}}}
fields:
  id: increment_id
  email: customer_email
  createdAt: created_at
  amount: grand_total              # with shipping and tax
  status: status
  coupons: {{column: coupon_code, split: ","}}
  ipAddress: remote_ip
  billing.address: bill.street
  billing.city: bill.city
  billing.postcode: bill.postcode
  billing.countryCode: bill.country_id
  billing.phone: bill.telephone
  billing.paymentMethod: pay.method
children:
  products:
    # One line per ordered product: a configurable (or bundle) product's own line; the simple
    # product chosen inside it is a child line (parent_item_id set) and is not counted again.
    table: {{p}}{orders}_item
    where: parent_item_id IS NULL
    parent_key: order_id
    cursor: updated_at              # a changed line re-reads its order
    fields:
      productId: product_id
      quantity: qty_ordered
    order_by: item_id
"""


GUESTS = """
# Customers made from guest orders (customer_is_guest), named as on the order.
fields:
  firstName: customer_firstname
  lastName: customer_lastname
"""

DELETED = """
# Products still on order lines but gone from the catalog, named as on the line.
fields:
  name: name
  price: price
"""


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


def magento(facts: SchemaFacts) -> Draft | None:
    edition = edition_of(facts)
    if edition is None:
        return None
    draft = Draft(edition.label, header(facts, edition.label, naive_utc=True))
    for key, text in (("customers", _customers(edition)), ("guest_customers", GUESTS),
                      ("categories", _categories(edition)), ("products", _products(edition)),
                      ("deleted_products", DELETED), ("orders", _orders(edition))):
        draft.add(Entry(key, Raw(block(text, edition.prefix))))
    return draft
