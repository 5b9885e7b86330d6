"""Changes a shop would make while cdc-sync watches it (for tests and demos).

Each helper bumps `updated_at` where the shop would, so cursor-based reads see the change.
They write, so they take an ordinary engine, never one from `connect_shop` (read-only).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from cdc_sync.demo import schema


def _later(conn: sa.Connection, table: sa.Table, row_id: int) -> datetime:
    # A moment strictly after the row's last change, so a cursor read picks it up even when
    # the demo data lies in the future of the machine's clock.
    current = conn.execute(sa.select(table.c.updated_at).where(table.c.id == row_id)).scalar()
    now = datetime.now().replace(microsecond=0)
    return max(now, (current or now) + timedelta(seconds=1))


def set_order_status(engine: sa.Engine, order_id: int, status: int) -> None:
    """Change an order's status code."""
    with engine.begin() as conn:
        stamp = _later(conn, schema.orders, order_id)
        conn.execute(schema.orders.update().where(schema.orders.c.id == order_id)
                     .values(status=status, updated_at=stamp))


def add_order(engine: sa.Engine, *, email: str, lines: Sequence[tuple[int, int]],
              customer_id: int | None = None, status: int = 1,
              created_at: datetime | None = None) -> int:
    """A new order of (product_id, quantity) lines, priced from the products; returns its id."""
    with engine.begin() as conn:
        order_id = _next_id(conn, schema.orders)
        line_id = _next_id(conn, schema.order_lines)
        stamp = created_at or datetime.now().replace(microsecond=0)
        total = Decimal("4.99")
        rows = []
        for offset, (product_id, quantity) in enumerate(lines):
            name, price = _product(conn, product_id)
            total += price * quantity
            rows.append({"id": line_id + offset, "order_id": order_id, "product_id": product_id,
                         "product_name": name, "unit_price": price, "quantity": quantity})
        conn.execute(schema.orders.insert(), [{
            "id": order_id, "customer_id": customer_id, "email": email, "status": status,
            "total": total, "created_at": stamp, "updated_at": stamp,
        }])
        if rows:
            conn.execute(schema.order_lines.insert(), rows)
    return order_id


def add_order_line(engine: sa.Engine, order_id: int, product_id: int, quantity: int) -> int:
    """A line added to an existing order, the order row untouched (as legacy shops do: line
    tables without timestamps); returns the line's id, one more than any before."""
    with engine.begin() as conn:
        line_id = _next_id(conn, schema.order_lines)
        name, price = _product(conn, product_id)
        conn.execute(schema.order_lines.insert(), [{
            "id": line_id, "order_id": order_id, "product_id": product_id,
            "product_name": name, "unit_price": price, "quantity": quantity,
        }])
    return line_id


def _next_id(conn: sa.Connection, table: sa.Table) -> int:
    highest = conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one()
    return int(highest) + 1


def _product(conn: sa.Connection, product_id: int) -> tuple[str, Decimal]:
    found = conn.execute(sa.select(schema.products.c.name, schema.products.c.price)
                         .where(schema.products.c.id == product_id)).first()
    if found is None:
        raise ValueError(f"product {product_id} does not exist in the demo shop")
    return str(found.name), Decimal(found.price)


def remove_tag(engine: sa.Engine, customer_id: int, tag: str) -> None:
    """Take a tag off a customer (and bump the customer, as a shop's admin screen would)."""
    with engine.begin() as conn:
        tag_id = conn.execute(sa.select(schema.tags.c.id).where(schema.tags.c.name == tag)).scalar()
        conn.execute(schema.customer_tags.delete().where(
            schema.customer_tags.c.customer_id == customer_id,
            schema.customer_tags.c.tag_id == tag_id,
        ))
        _touch(conn, schema.customers, customer_id)


def add_tag(engine: sa.Engine, customer_id: int, tag: str) -> None:
    """Put a tag on a customer, creating the tag if needed."""
    with engine.begin() as conn:
        tag_id = conn.execute(sa.select(schema.tags.c.id).where(schema.tags.c.name == tag)).scalar()
        if tag_id is None:
            tag_id = _next_id(conn, schema.tags)
            conn.execute(schema.tags.insert(), [{"id": tag_id, "name": tag}])
        conn.execute(schema.customer_tags.insert(),
                     [{"customer_id": customer_id, "tag_id": tag_id}])
        _touch(conn, schema.customers, customer_id)


def rename_customer(engine: sa.Engine, customer_id: int, first_name: str) -> None:
    """Change a customer's first name."""
    with engine.begin() as conn:
        stamp = _later(conn, schema.customers, customer_id)
        conn.execute(schema.customers.update().where(schema.customers.c.id == customer_id)
                     .values(first_name=first_name, updated_at=stamp))


def set_product_price(engine: sa.Engine, product_id: int, price: Decimal) -> None:
    """Change a product's price."""
    with engine.begin() as conn:
        stamp = _later(conn, schema.products, product_id)
        conn.execute(schema.products.update().where(schema.products.c.id == product_id)
                     .values(price=price, updated_at=stamp))


def delete_product(engine: sa.Engine, product_id: int) -> None:
    """Delete a product (its order lines stay, as in shops without foreign keys)."""
    with engine.begin() as conn:
        conn.execute(schema.product_categories.delete()
                     .where(schema.product_categories.c.product_id == product_id))
        conn.execute(schema.product_variants.delete()
                     .where(schema.product_variants.c.product_id == product_id))
        conn.execute(schema.products.delete().where(schema.products.c.id == product_id))


def delete_customer(engine: sa.Engine, customer_id: int) -> None:
    """Delete a customer and their tags (their orders stay)."""
    with engine.begin() as conn:
        conn.execute(schema.customer_tags.delete()
                     .where(schema.customer_tags.c.customer_id == customer_id))
        conn.execute(schema.customers.delete().where(schema.customers.c.id == customer_id))


def delete_order(engine: sa.Engine, order_id: int) -> None:
    """Delete an order with its lines and coupons."""
    with engine.begin() as conn:
        for table in (schema.order_lines, schema.order_coupons):
            conn.execute(table.delete().where(table.c.order_id == order_id))
        conn.execute(schema.orders.delete().where(schema.orders.c.id == order_id))


def _touch(conn: sa.Connection, table: sa.Table, row_id: int) -> None:
    stamp = _later(conn, table, row_id)
    conn.execute(table.update().where(table.c.id == row_id).values(updated_at=stamp))
