"""The changes the guided demo makes to its shop between two cycles (writes; demo only)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import sqlalchemy as sa

from cdc_sync.demo import mutate, schema

COMPLETED = 3
GUEST_EMAIL = "first.time.buyer@example.org"


def demo_mapping_path() -> Path:
    """The packaged copy of the top-level mappings.yaml (a test keeps them equal)."""
    return Path(str(resources.files("cdc_sync.demo") / "mappings.yaml"))


@dataclass(frozen=True)
class Changes:
    """What the demo changed, to say it and to check it arrived."""

    status_order: int
    guest_order: int
    untagged_customer: int
    removed_tag: str
    deleted_product: int
    line_order: int  # an order that got a line, its own row untouched


def make_changes(engine: sa.Engine) -> Changes:
    """An order status change, a guest order, a removed tag, a deleted (ordered) product and a
    line added to an order without touching the order's row (a child-only change)."""
    with engine.connect() as conn:
        order_id = conn.execute(
            sa.select(sa.func.min(schema.orders.c.id)).where(schema.orders.c.status != COMPLETED)
        ).scalar_one()
        tagged = conn.execute(
            sa.select(schema.customer_tags.c.customer_id, schema.tags.c.name)
            .join(schema.tags, schema.tags.c.id == schema.customer_tags.c.tag_id)
            .order_by(schema.customer_tags.c.customer_id).limit(1)
        ).one()
        product_id, other_product = conn.execute(
            sa.select(schema.products.c.id).order_by(schema.products.c.id).limit(2)
        ).scalars().all()
        line_order = conn.execute(
            sa.select(sa.func.max(schema.orders.c.id)).where(schema.orders.c.id != order_id)
        ).scalar_one()
    mutate.set_order_status(engine, order_id, COMPLETED)
    guest_order = mutate.add_order(engine, email=GUEST_EMAIL, lines=[(product_id, 1),
                                                                     (other_product, 2)])
    mutate.remove_tag(engine, tagged.customer_id, tagged.name)
    mutate.delete_product(engine, product_id)
    mutate.add_order_line(engine, line_order, other_product, 3)
    return Changes(order_id, guest_order, tagged.customer_id, tagged.name, product_id,
                   line_order)
