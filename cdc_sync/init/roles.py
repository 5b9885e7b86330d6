"""Which table plays which part in an unknown shop schema (pure heuristics).

Customers carry an email; orders reference customers (or carry an email) and have a date and a
money column; order lines reference orders and products; categories hang off products, by a
column or through a link table. Each choice keeps the reason, which init writes as a comment.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdc_sync.init.columns import MONEY, pick, reference_to, references, single_key, words_in
from cdc_sync.init.facts import Kind, SchemaFacts, TableFact

EMAIL = ("email", "email_address", "mail", "customer_email", "user_email")
CUSTOMER_WORDS = ("customer", "user", "client", "member", "account", "subscriber", "buyer",
                  "shopper", "contact")
NOT_CUSTOMER_WORDS = ("order", "invoice", "employee", "staff", "admin", "log", "newsletter",
                      "address", "review")
ORDER_WORDS = ("order", "invoice", "purchase", "sale", "checkout", "transaction")
LINE_WORDS = ("line", "item", "detail", "product", "entry")
PRODUCT_WORDS = ("product", "item", "article", "track", "good", "sku", "book", "merchandise")
CATEGORY_WORDS = ("categor", "genre", "collection", "department", "section", "taxon")
TAG_WORDS = ("tag", "label", "segment", "group")
VARIANT_WORDS = ("variant", "variation", "option", "sku")
COUPON_WORDS = ("coupon", "voucher", "discount", "promo")
QUANTITY = ("quantity", "qty", "qty_ordered", "quantity_ordered", "count", "amount")
ORDER_DATE = ("created_at", "order_date", "invoice_date", "date_created", "created", "placed_at",
              "ordered_at", "purchase_date", "date_added", "date_add", "date", "created_on")
ORDER_TOTAL = ("total", "grand_total", "order_total", "total_amount", "amount", "total_paid",
               "total_price", "sum")


@dataclass(frozen=True)
class Roles:
    """The tables found for each part (None: nothing fits) and why each was taken."""

    customers: TableFact | None = None
    orders: TableFact | None = None
    lines: TableFact | None = None
    products: TableFact | None = None
    categories: TableFact | None = None


def email_column(table: TableFact) -> str | None:
    found = pick(table, EMAIL, (Kind.TEXT,), contains=("email",))
    return found.name if found is not None else None


def order_date(table: TableFact) -> str | None:
    found = pick(table, ORDER_DATE, (Kind.DATE,), contains=("creat", "date", "placed"))
    if found is None:  # else the first date column that is not a change date
        found = next((c for c in table.columns if c.kind == Kind.DATE
                      and not any(w in c.norm for w in ("upd", "modif", "chang"))), None)
    return found.name if found is not None else None


def order_total(table: TableFact) -> str | None:
    found = pick(table, ORDER_TOTAL, MONEY, contains=("total", "amount"))
    return found.name if found is not None else None


def find_roles(facts: SchemaFacts) -> Roles:
    customers = _customers(facts)
    orders = _orders(facts, customers)
    lines = _lines(facts, orders) if orders is not None else None
    products = _products(facts, lines, orders)
    categories = _categories(facts, products) if products is not None else None
    return Roles(customers, orders, lines, products, categories)


def _best(scored: list[tuple[int, TableFact]]) -> TableFact | None:
    scored = [(score, table) for score, table in scored if score > 0]
    if not scored:
        return None
    return max(scored, key=lambda pair: (pair[0], pair[1].rows, -len(pair[1].name)))[1]


def _customers(facts: SchemaFacts) -> TableFact | None:
    scored = []
    for table in facts.tables:
        if email_column(table) is None or single_key(table) is None:
            continue
        score = 1 + (5 if words_in(table.name, CUSTOMER_WORDS) else 0)
        score -= 6 if words_in(table.name, NOT_CUSTOMER_WORDS) else 0
        score -= 3 if order_total(table) and order_date(table) else 0
        score += 1 if table.rows else 0
        scored.append((score, table))
    return _best(scored)


def _orders(facts: SchemaFacts, customers: TableFact | None) -> TableFact | None:
    scored = []
    for table in facts.tables:
        if table is customers or single_key(table) is None:
            continue
        if order_date(table) is None or order_total(table) is None:
            continue
        by_customer = customers is not None and reference_to(facts, table, customers.name)
        if not by_customer and email_column(table) is None:
            continue
        score = 1 + (5 if words_in(table.name, ORDER_WORDS) else 0)
        score += 2 if by_customer else 0
        score -= 4 if words_in(table.name, ("line", "item", "detail")) else 0
        score += 1 if table.rows else 0
        scored.append((score, table))
    return _best(scored)


def _lines(facts: SchemaFacts, orders: TableFact) -> TableFact | None:
    scored = []
    for table in facts.tables:
        if table is orders or reference_to(facts, table, orders.name) is None:
            continue
        others = [r for r in references(facts, table) if r.table != orders.name]
        quantity = pick(table, QUANTITY, MONEY)
        if not others:
            continue
        score = 1 + (3 if quantity else 0) + (2 if words_in(table.name, LINE_WORDS) else 0)
        score += 1 if table.rows else 0
        scored.append((score, table))
    return _best(scored)


def line_product_reference(facts: SchemaFacts, lines: TableFact, orders: TableFact) -> str | None:
    """The order line's column naming its product (the reference that is not the order's)."""
    refs = [r for r in references(facts, lines) if r.table != orders.name and len(r.columns) == 1]
    if not refs:
        return None
    best = max(refs, key=lambda r: (words_in(r.table, PRODUCT_WORDS), r.declared))
    return best.columns[0]


def _products(facts: SchemaFacts, lines: TableFact | None,
              orders: TableFact | None) -> TableFact | None:
    if lines is not None and orders is not None:
        column = line_product_reference(facts, lines, orders)
        ref = next((r for r in references(facts, lines) if r.columns == (column,)), None)
        if ref is not None:
            return facts.table(ref.table)
    scored = [(5 if words_in(t.name, PRODUCT_WORDS) else 0, t) for t in facts.tables
              if single_key(t) and pick(t, ("price",), MONEY, contains=("price",))]
    return _best(scored)


def _categories(facts: SchemaFacts, products: TableFact) -> TableFact | None:
    for ref in references(facts, products):
        if words_in(ref.table, CATEGORY_WORDS):
            return facts.table(ref.table)
    link = category_link(facts, products)
    if link is not None:
        return facts.table(link[2])
    scored = [(5, t) for t in facts.tables if words_in(t.name, CATEGORY_WORDS) and single_key(t)]
    return _best(scored)


Link = tuple[TableFact, str, str, str]  # link table, owner column, other table, its column


def category_link(facts: SchemaFacts, products: TableFact) -> Link | None:
    """A link table between products and a category table."""
    return _link(facts, products, CATEGORY_WORDS)


def tag_link(facts: SchemaFacts, customers: TableFact) -> Link | None:
    return _link(facts, customers, TAG_WORDS)


def _link(facts: SchemaFacts, owner: TableFact, words: tuple[str, ...]) -> Link | None:
    for table in facts.tables:
        if table is owner:
            continue
        refs = references(facts, table)
        mine = next((r for r in refs if r.table == owner.name and len(r.columns) == 1), None)
        theirs = next((r for r in refs if r is not mine and len(r.columns) == 1
                       and words_in(r.table, words)), None)
        if mine is not None and theirs is not None and len(table.columns) <= 4:
            return table, mine.columns[0], theirs.table, theirs.columns[0]
    return None


def children_of(facts: SchemaFacts, parent: TableFact, words: tuple[str, ...],
                exclude: set[str]) -> TableFact | None:
    """A table referencing `parent` whose name has one of `words` (variants, coupons)."""
    for table in facts.tables:
        if table.name in exclude or table is parent or not words_in(table.name, words):
            continue
        if reference_to(facts, table, parent.name) is not None:
            return table
    return None
