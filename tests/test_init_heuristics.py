"""init's pure parts: schema facts in, mapping text out (no database needed).

Hand-made facts stand for schemas nobody here designed; the drafted text must load as a
mapping, say why it chose each table, and write a resource nothing fits for commented out
with the reason. Platforms are recognised by their tables and prefix, and only then.
"""

from __future__ import annotations

from pathlib import Path

from cdc_sync.init.detect import draft_for
from cdc_sync.init.facts import ColumnFact, Kind, Reference, SchemaFacts, TableFact
from cdc_sync.init.generic import generic_draft
from cdc_sync.mapping.loader import LoadedMapping, parse_mapping

INT, N, T, D = Kind.INTEGER, Kind.NUMBER, Kind.TEXT, Kind.DATE


def table(name: str, *columns: tuple[str, Kind], key: str = "id", rows: int = 10,
          refs: tuple[Reference, ...] = (), values: dict[str, tuple[str, ...]] | None = None
          ) -> TableFact:
    facts = tuple(ColumnFact(n, k, values=(values or {}).get(n, ())) for n, k in columns)
    return TableFact(name, facts, (key,), refs, rows)


def loaded(facts: SchemaFacts) -> tuple[str, LoadedMapping]:
    text = generic_draft(facts).text()
    return text, parse_mapping(text, Path("m.yaml"))


def test_no_shop_writes_every_resource_commented_out_with_its_reason() -> None:
    facts = SchemaFacts("postgresql", (table("audit_log", ("id", INT), ("message", T)),))
    draft = generic_draft(facts)
    text = draft.text()
    assert draft.mapped() == []
    assert "TODO: not mapped: no table with an email column looks like customers" in text
    assert "# orders:" in text
    assert parse_mapping(text, Path("m.yaml")).spec.orders is None


def test_orders_without_an_email_take_the_customer_s_through_a_join() -> None:
    facts = SchemaFacts("mysql", (
        table("members", ("id", INT), ("mail", T), ("joined", D), ("surname", T)),
        table("purchases", ("id", INT), ("member_id", INT), ("placed", D), ("amount_due", N),
              ("state", T), values={"state": ("open", "paid")}),
    ))
    text, mapping = loaded(facts)
    orders, customers = mapping.spec.orders, mapping.spec.customers
    assert customers is not None
    assert customers.table == "members"
    assert customers.fields["email"].column == "mail"
    assert customers.fields["lastName"].column == "surname"
    assert orders is not None
    assert orders.table == "purchases"
    assert orders.joins[0].table == "members"
    assert orders.joins[0].pairs() == {"member_id": "id"}
    assert orders.fields["email"].column == "c.mail"
    assert orders.fields["status"].column == "state"
    assert "# state: open, paid" in text
    assert mapping.spec.guest_customers.enabled is False  # every email comes from a customer


def test_products_categories_and_lines_are_found_through_references() -> None:
    facts = SchemaFacts("sqlite", (
        table("clients", ("id", INT), ("email", T), ("created", D)),
        table("sales", ("id", INT), ("client_id", INT), ("sold_at", D), ("total", N),
              ("status_id", INT)),
        table("sale_statuses", ("id", INT), ("label", T)),
        table("sale_items", ("id", INT), ("sale_id", INT), ("article_id", INT), ("qty", INT),
              ("unit_price", N)),
        table("articles", ("id", INT), ("title", T), ("price", N), ("genre_id", INT)),
        table("genres", ("id", INT), ("label", T)),
    ))
    text, mapping = loaded(facts)
    products, categories, orders = (mapping.spec.products, mapping.spec.categories,
                                    mapping.spec.orders)
    assert products is not None
    assert products.table == "articles"
    assert products.children["categories"].value is not None
    assert products.children["categories"].value.column == "genre_id"  # the self-child
    assert categories is not None
    assert categories.table == "genres"
    assert orders is not None
    lines = orders.children["products"]
    assert (lines.table, lines.parent_key) == ("sale_items", ["sale_id"])
    assert lines.fields is not None
    assert lines.fields["productId"].column == "article_id"
    assert orders.fields["status"].column == "st.label"  # named through the status table
    assert mapping.spec.deleted_products.fields["price"].column == "unit_price"
    assert "TODO: lines keep no name" in text


def test_a_foreign_key_beats_a_name_and_camel_case_names_match() -> None:
    facts = SchemaFacts("mysql", (
        table("Person", ("PersonId", INT), ("EmailAddress", T), ("SignupDate", D),
              key="PersonId"),
        table("Bill", ("BillId", INT), ("Buyer", INT), ("BillDate", D), ("Total", N),
              key="BillId", refs=(Reference(("Buyer",), "Person", ("PersonId",)),)),
    ))
    _, mapping = loaded(facts)
    assert mapping.spec.orders is not None
    assert mapping.spec.orders.joins[0].pairs() == {"Buyer": "PersonId"}


def wordpress(prefix: str, *, hpos_rows: int = 0) -> SchemaFacts:
    names = ["posts", "postmeta", "users", "usermeta", "terms", "term_taxonomy",
             "term_relationships", "woocommerce_order_items", "woocommerce_order_itemmeta"]
    tables = [table(prefix + n, ("id", INT)) for n in names]
    tables.append(table(prefix + "wc_orders", ("id", INT), rows=hpos_rows))
    return SchemaFacts("mysql", tuple(tables))


def test_woocommerce_is_recognised_under_any_prefix_and_picks_its_order_storage() -> None:
    posts = draft_for(wordpress("blog2_"))
    hpos = draft_for(wordpress("wp_", hpos_rows=3))
    assert posts.platform == "WooCommerce (table prefix 'blog2_', orders as posts)"
    assert "table: blog2_posts" in posts.text()
    assert hpos.platform == "WooCommerce (table prefix 'wp_', HPOS order tables)"
    assert "table: wp_wc_orders" in hpos.text()


def test_a_platform_missing_one_of_its_tables_is_not_recognised() -> None:
    facts = wordpress("wp_")
    partial = SchemaFacts("mysql", tuple(t for t in facts.tables if t.name != "wp_postmeta"))
    assert draft_for(partial).platform.startswith("no known platform")


def test_magento_commerce_is_told_apart_by_row_id() -> None:
    names = ["sales_order", "sales_order_item", "eav_attribute", "eav_entity_type",
             "catalog_category_product", "customer_entity"]
    tables = [table(n, ("entity_id", INT), key="entity_id") for n in names]
    staged = table("catalog_product_entity", ("row_id", INT), ("entity_id", INT), key="row_id")
    draft = draft_for(SchemaFacts("mysql", (*tables, staged)))
    assert draft.platform == "Magento 2 (table prefix '', Commerce edition: EAV by row_id)"
    assert "v_name.row_id = e.row_id" in draft.text()
    assert "UNIX_TIMESTAMP()" in draft.text()
