"""A mapping for a schema no preset knows, from the roles the heuristics found (pure).

Every resource is written with a comment saying which table and columns were taken and why;
`TODO` marks each guess a person should confirm. A resource nothing fits for is written
commented out, with the reason.
"""

from __future__ import annotations

from cdc_sync.init import roles as r
from cdc_sync.init.columns import (
    MONEY,
    pick,
    reference_to,
    references,
    single_key,
    text_column,
    words_in,
)
from cdc_sync.init.draft import Draft, disabled, header
from cdc_sync.init.facts import ColumnFact, Kind, SchemaFacts, TableFact
from cdc_sync.init.yamltext import Entry, Flow, Literal

NAMES = ("name", "title", "label", "product_name", "category_name")
FIRST = ("first_name", "firstname", "fname", "given_name", "forename")
LAST = ("last_name", "lastname", "lname", "surname", "family_name")
SIGNUP = ("created_at", "created", "date_created", "registered", "registered_at", "signup_date",
          "date_added", "date_add", "creation_date", "joined_at", "created_on", "user_registered")
UPDATED = ("updated_at", "updated", "modified", "modified_at", "last_update", "last_modified",
           "date_upd", "date_modified", "updated_on", "changed_at")
SUBSCRIBED = ("subscribed", "newsletter", "accepts_marketing", "optin", "opt_in", "is_subscribed")
BOOLEAN_TEXT = {"y", "n", "yes", "no", "true", "false", "t", "f", "1", "0"}
STATUS = ("status", "state", "order_status", "order_state", "status_id", "state_id")
SKU = ("sku", "code", "reference", "product_code", "item_code")
PRICE = ("price", "unit_price", "regular_price", "list_price", "base_price", "sale_price")
BILLING = {
    "billing.address": ("billing_address", "billing_street", "billing_address1", "bill_address"),
    "billing.city": ("billing_city", "bill_city"),
    "billing.postcode": ("billing_postcode", "billing_postal_code", "billing_zip", "bill_zip"),
    "billing.phone": ("billing_phone", "bill_phone"),
    "billing.paymentMethod": ("payment_method", "payment", "payment_code"),
}
COUNTRY = ("billing_country", "billing_country_code", "billing_country_id", "bill_country")
IP = ("ip_address", "remote_ip", "ip", "customer_ip")


def generic_draft(facts: SchemaFacts) -> Draft:
    """The mapping the heuristics make of `facts` (customers, categories, products, orders)."""
    found = r.find_roles(facts)
    draft = Draft("no known platform (generic heuristics)", header(facts, "generic heuristics"))
    draft.add(_customers(facts, found))
    draft.add(_guests(found))
    draft.add(_categories(found))
    draft.add(_products(facts, found))
    draft.add(_deleted_products(found))
    draft.add(_orders(facts, found))
    return draft


def _cursor(table: TableFact) -> list[Entry]:
    found = pick(table, UPDATED, (Kind.DATE,))
    if found is None:
        return []
    return [Entry("cursor", found.name, f"{found.name} looks bumped on every change: "
                  "incremental reads. TODO: confirm every change updates it")]


def _customers(facts: SchemaFacts, found: r.Roles) -> Entry:
    table = found.customers
    if table is None:
        return disabled("customers", "no table with an email column looks like customers")
    email = r.email_column(table)
    fields = [Entry("email", email, f"{email}: the email column")]
    created = _signup(facts, table, found.orders)
    if created is None:
        return disabled("customers", f"{table.name} has no date for createdAt and no orders "
                        "table to take the first order's date from", Entry("table", table.name))
    fields.append(created)
    fields += _optional(table, [("firstName", FIRST), ("lastName", LAST)])
    subscribed = _subscribed(table)
    if subscribed is not None:
        fields.append(subscribed)
    body = [Entry("table", table.name), *_cursor(table), Entry("fields", fields)]
    tags = _tags(facts, table)
    if tags is not None:
        body.append(Entry("children", [tags]))
    why = f"customers: {table.name}, the table with an email column that looks like customers"
    return Entry("customers", body, why)


def _signup(facts: SchemaFacts, table: TableFact, orders: TableFact | None) -> Entry | None:
    column = pick(table, SIGNUP, (Kind.DATE,), contains=("creat", "regist", "signup", "join"))
    if column is not None:
        return Entry("createdAt", column.name, f"{column.name}: when the customer signed up")
    ref = reference_to(facts, orders, table.name) if orders is not None else None
    date = r.order_date(orders) if orders is not None else None
    key = single_key(table)
    if ref is None or date is None or key is None or orders is None:
        return None
    q = facts.quote
    sql = (f"(SELECT MIN(o.{q(date)}) FROM {q(orders.name)} o "
           f"WHERE o.{q(ref.columns[0])} = {q(table.name)}.{q(key)})")
    return Entry("createdAt", [Entry("expression", sql)],
                 f"TODO: {table.name} keeps no sign-up date; the first order's date stands in")


def _optional(table: TableFact, wanted: list[tuple[str, tuple[str, ...]]]) -> list[Entry]:
    entries = []
    for field, names in wanted:
        column = pick(table, names, (Kind.TEXT,))
        if column is not None:
            entries.append(Entry(field, column.name))
    return entries


def _subscribed(table: TableFact) -> Entry | None:
    column = pick(table, SUBSCRIBED, (Kind.BOOLEAN, Kind.INTEGER, Kind.TEXT),
                  contains=("newsletter", "subscri"))
    if column is None:
        return None
    if column.kind != Kind.BOOLEAN and not {v.lower() for v in column.values} <= BOOLEAN_TEXT:
        return Entry("subscribed", [Entry("const", False)],
                     f"TODO: {column.name} holds {_seen(column)}: map them to true/false")
    return Entry("subscribed", [Entry("column", column.name), Entry("default", False)],
                 f"{column.name}: {_seen(column) or 'a flag'}, read as true/false")


def _seen(column: ColumnFact) -> str:
    return ", ".join(column.values[:12]) if column.values else ""


def _tags(facts: SchemaFacts, customers: TableFact) -> Entry | None:
    link = r.tag_link(facts, customers)
    if link is None:
        return None
    table, mine, tag_table_name, theirs = link
    tag_table = facts.table(tag_table_name)
    tag_key = single_key(tag_table) if tag_table else None
    name = text_column(tag_table, NAMES) if tag_table else None
    if tag_key is None or name is None:
        return None
    q = facts.quote
    sql = (f"SELECT l.{q(mine)} AS customer_key, t.{q(name.name)} AS tag\n"
           f"FROM {q(table.name)} l JOIN {q(tag_table_name)} t ON t.{q(tag_key)} = l.{q(theirs)}")
    return Entry("tags", [Entry("query", Literal(sql)), Entry("parent_key", "customer_key"),
                          Entry("value", "tag"), Entry("order_by", "tag")],
                 f"tags: {tag_table_name}.{name.name} through the link table {table.name}")


def _guests(found: r.Roles) -> Entry:
    orders = found.orders
    if orders is None or r.email_column(orders) is None:
        reason = ("every order's email comes from its customer row" if orders is not None
                  else "there are no orders to make guests from")
        return Entry("guest_customers", [Entry("enabled", False)], reason)
    fields = _optional(orders, [("firstName", ("billing_first_name", *FIRST)),
                                ("lastName", ("billing_last_name", *LAST))])
    body: list[Entry] = [Entry("fields", fields)] if fields else [Entry("enabled", True)]
    why = (f"customers made from {orders.name}.{r.email_column(orders)} where it belongs to no "
           "customer row (guest checkouts)")
    return Entry("guest_customers", body, why)


def _categories(found: r.Roles) -> Entry:
    table = found.categories
    key = single_key(table) if table is not None else None
    if table is None or key is None:
        return disabled("categories", "no table the products reference looks like categories")
    name = text_column(table, NAMES)
    if name is None:
        return disabled("categories", f"{table.name} has no text column for a name",
                        Entry("table", table.name))
    fields = [Entry("id", key), Entry("name", name.name)]
    why = f"categories: {table.name}, which the products ({_name(found.products)}) point at"
    return Entry("categories", [Entry("table", table.name), Entry("fields", fields)], why)


def _name(table: TableFact | None) -> str:
    return table.name if table is not None else "none found"


def _products(facts: SchemaFacts, found: r.Roles) -> Entry:
    table = found.products
    key = single_key(table) if table is not None else None
    if table is None or key is None:
        return disabled("products", "no table the order lines reference looks like products")
    name = text_column(table, NAMES)
    fields = [Entry("id", key)]
    fields.append(Entry("name", name.name) if name is not None else
                  Entry("name", [Entry("template", f"#{{{key}}}")], "TODO: no name column"))
    price = pick(table, PRICE, MONEY, contains=("price",))
    fields.append(Entry("price", price.name) if price is not None else
                  Entry("price", [Entry("const", 0)], "TODO: no price column found"))
    sku = pick(table, SKU, (Kind.TEXT,))
    if sku is not None:
        fields.append(Entry("sku", sku.name))
    children = [c for c in (_product_categories(facts, found, table, key),
                            _options(facts, found, table)) if c is not None]
    body = [Entry("table", table.name), *_cursor(table), Entry("fields", fields)]
    if children:
        body.append(Entry("children", children))
    why = f"products: {table.name}" + (" (what the order lines point at)" if found.lines else "")
    return Entry("products", body, why + "; TODO: add url/imageUrl templates with your shop's "
                 "address")


def _product_categories(facts: SchemaFacts, found: r.Roles, table: TableFact,
                        key: str) -> Entry | None:
    categories = found.categories
    if categories is None:
        return None
    ref = reference_to(facts, table, categories.name)
    if ref is not None:
        return Entry("categories", [Entry("table", table.name), Entry("parent_key", key),
                                    Entry("value", ref.columns[0])],
                     f"each product's one category, from its own column {ref.columns[0]}")
    link = r.category_link(facts, table)
    if link is None:
        return None
    return Entry("categories", [Entry("table", link[0].name), Entry("parent_key", link[1]),
                                Entry("value", link[3]), Entry("order_by", link[3])],
                 f"categories through the link table {link[0].name}")


def _options(facts: SchemaFacts, found: r.Roles, products: TableFact) -> Entry | None:
    exclude = {t.name for t in (found.lines, found.categories) if t is not None}
    table = r.children_of(facts, products, r.VARIANT_WORDS, exclude)
    key = single_key(table) if table is not None else None
    ref = reference_to(facts, table, products.name) if table is not None else None
    if table is None or key is None or ref is None:
        return None
    name = text_column(table, NAMES)
    price = pick(table, PRICE, MONEY, contains=("price",))
    if name is None or price is None:
        return None
    fields = [Entry("id", key), Entry("name", name.name), Entry("price", price.name)]
    sku = pick(table, SKU, (Kind.TEXT,))
    fields += [Entry("sku", sku.name)] if sku is not None else []
    return Entry("options", [Entry("table", table.name), Entry("parent_key", ref.columns[0]),
                             Entry("fields", fields), Entry("order_by", key)],
                 f"options: the variants in {table.name}")


def _deleted_products(found: r.Roles) -> Entry:
    lines = found.lines
    if lines is None or found.products is None:
        return Entry("deleted_products", [Entry("enabled", False)], "no order lines found")
    name = pick(lines, ("product_name", "name", "title", "item_name"), (Kind.TEXT,))
    price = pick(lines, PRICE, MONEY, contains=("price",))
    fields = [Entry("name", name.name) if name is not None else
              Entry("name", [Entry("const", "Deleted product")], "TODO: lines keep no name"),
              Entry("price", price.name) if price is not None else
              Entry("price", [Entry("const", 0)], "TODO: lines keep no price")]
    return Entry("deleted_products", [Entry("fields", fields)],
                 f"products still on order lines but gone from {found.products.name}: "
                 f"made from {lines.name}'s columns")


def _orders(facts: SchemaFacts, found: r.Roles) -> Entry:
    table = found.orders
    key = single_key(table) if table is not None else None
    if table is None or key is None:
        return disabled("orders", "no table with a date and a money column references "
                        "customers or carries an email")
    joins, email = _order_email(facts, table, found.customers)
    date, total = r.order_date(table), r.order_total(table)
    fields = [Entry("id", key), email,
              Entry("createdAt", date, f"{date}: when the order was placed"),
              Entry("amount", total, f"{total}: the order total. TODO: confirm it includes "
                    "shipping and tax"),
              _status(facts, table, joins)]
    fields += _billing(table)
    body = [Entry("table", table.name), *_cursor(table)]
    if joins:
        body.append(Entry("joins", joins))
    body.append(Entry("fields", fields))
    children = [c for c in (_order_lines(facts, found), _coupons(facts, found, table))
                if c is not None]
    if children:
        body.append(Entry("children", children))
    return Entry("orders", [*body, Entry("on_delete", Flow({"action": "gone"}))],
                 f"orders: {table.name}, with a date ({date}) and a total ({total})")


def _order_email(facts: SchemaFacts, table: TableFact,
                 customers: TableFact | None) -> tuple[list[list[Entry]], Entry]:
    own = r.email_column(table)
    if own is not None:
        return [], Entry("email", own, f"{own}: the buyer's email (guests included)")
    assert customers is not None  # an order table without an email references customers
    ref = reference_to(facts, table, customers.name)
    assert ref is not None
    join = [Entry("table", customers.name), Entry("alias", "c"),
            Entry("on", Flow({ref.columns[0]: ref.target_columns[0]}))]
    email = r.email_column(customers)
    return [join], Entry("email", f"c.{email}", f"the customer's email, joined by {ref.columns[0]}")


def _status(facts: SchemaFacts, table: TableFact, joins: list[list[Entry]]) -> Entry:
    named = _status_lookup(facts, table)
    if named is not None:
        by, lookup, key, name = named
        joins.append([Entry("table", lookup), Entry("alias", "st"),
                      Entry("on", Flow({by: key}))])
        return Entry("status", f"st.{name}", f"the status's name from {lookup}, joined by {by}")
    column = pick(table, STATUS, (Kind.TEXT, Kind.INTEGER))
    if column is None:
        return Entry("status", [Entry("const", "completed")],
                     f"TODO: {table.name} has no status column; every order is sent as completed")
    if column.kind == Kind.TEXT:
        return Entry("status", column.name, f"{column.name}: {_seen(column)}")
    return Entry("status", [Entry("column", column.name), Entry("type", "string")],
                 f"TODO: {column.name} holds codes ({_seen(column)}); name them with "
                 "map: {1: pending, 2: completed, ...} and default: other")


def _status_lookup(facts: SchemaFacts, table: TableFact) -> tuple[str, str, str, str] | None:
    """(order column, status table, its key, its name column) when the status is a reference
    to a table of statuses (order_status_id -> order_statuses.name)."""
    for ref in references(facts, table):
        target = facts.table(ref.table)
        wanted = words_in(ref.table, ("status", "state"))
        if target is None or len(ref.columns) != 1 or not wanted:
            continue
        name = text_column(target, NAMES)
        if name is not None and len(target.primary_key) == 1:
            return ref.columns[0], target.name, target.primary_key[0], name.name
    return None


def _billing(table: TableFact) -> list[Entry]:
    entries = []
    for field, names in BILLING.items():
        column = pick(table, names, (Kind.TEXT,))
        if column is not None:
            entries.append(Entry(field, column.name))
    country = pick(table, COUNTRY, (Kind.TEXT,))
    if country is not None and country.length is not None and country.length <= 3:
        entries.append(Entry("billing.countryCode", country.name))
    elif country is not None:
        entries.append(Entry("billing.countryCode", country.name, f"TODO: {country.name} may "
                             "hold names; Metrilo wants ISO codes (US, DE)", commented_out=True))
    ip = pick(table, IP, (Kind.TEXT,))
    entries += [Entry("ipAddress", ip.name)] if ip is not None else []
    return entries


def _order_lines(facts: SchemaFacts, found: r.Roles) -> Entry | None:
    lines, orders = found.lines, found.orders
    if lines is None or orders is None:
        return None
    ref = reference_to(facts, lines, orders.name)
    product = r.line_product_reference(facts, lines, orders)
    quantity = pick(lines, r.QUANTITY, MONEY)
    if ref is None or product is None:
        return None
    fields = [Entry("productId", product),
              Entry("quantity", quantity.name) if quantity is not None else
              Entry("quantity", [Entry("const", 1)], "TODO: no quantity column; 1 each")]
    body = [Entry("table", lines.name), Entry("parent_key", ref.columns[0]),
            Entry("fields", fields)]
    if single_key(lines):
        body.append(Entry("order_by", single_key(lines)))
    return Entry("products", body, f"order lines: {lines.name} (references {orders.name} "
                 f"by {ref.columns[0]} and the product by {product})")


def _coupons(facts: SchemaFacts, found: r.Roles, orders: TableFact) -> Entry | None:
    exclude = {t.name for t in (found.lines,) if t is not None}
    table = r.children_of(facts, orders, r.COUPON_WORDS, exclude)
    ref = reference_to(facts, table, orders.name) if table is not None else None
    code = pick(table, ("code", "coupon_code", "coupon", "voucher"), (Kind.TEXT,),
                contains=("code",)) if table is not None else None
    if table is None or ref is None or code is None:
        return None
    return Entry("coupons", [Entry("table", table.name), Entry("parent_key", ref.columns[0]),
                             Entry("value", code.name), Entry("order_by", code.name)],
                 f"coupon codes from {table.name}")
