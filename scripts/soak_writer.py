"""The soak's writer: a shop that keeps changing while cdc-sync watches it.

Runs in its own process (`write_shop`), as the shop's application would: updates, inserts and
deletions through cdc_sync.demo.mutate (plus inserts of customers and products, which mutate
has no helper for), one small transaction each, a few dozen a second. It is the only writer,
so it keeps the ids it may touch in memory. Deletions stay far under the delete guard
(`sync.delete_guard`, 20% of a resource gone in one cycle): at most 5% of each table's rows
over the whole run; and only orders of registered customers that hold no line of a deleted
product, so the resources derived from orders (guest customers, deleted products: a handful
of records, where one gone record is already more than 20%) never lose a record.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from cdc_sync.demo import mutate, schema
from cdc_sync.demo.generate import TAGS

DELETE_SHARE = 0.05
# operation -> weight
WEIGHTS = {
    "rename_customer": 18, "set_order_status": 18, "set_product_price": 10, "add_tag": 6,
    "remove_tag": 6, "add_order": 14, "add_guest_order": 6, "add_customer": 8,
    "add_product": 3, "delete_order": 4, "delete_customer": 3, "delete_product": 2,
    "edit_line_quietly": 6,
}
KIND = {"delete_order": "deletes", "delete_customer": "deletes", "delete_product": "deletes",
        "add_order": "inserts", "add_guest_order": "inserts", "add_customer": "inserts",
        "add_product": "inserts"}


Changes = tuple[dict[str, int], str | None]
"""What the writer did (counts by operation and kind), and why it stopped early, if it did."""


def write_shop(shop_url: str, seed: int, stop: Any, results: Any) -> None:
    """Change the shop until `stop` (an Event) is set; put `Changes` on `results` (a Queue)."""
    engine = sa.create_engine(shop_url)
    counts: Counter[str] = Counter()
    failure: str | None = None
    try:
        writer = ShopWriter(engine, random.Random(seed), counts)  # noqa: S311 - reproducible
        while not stop.is_set():
            writer.step()
            stop.wait(writer.rng.uniform(0.01, 0.08))
    except Exception as exc:  # reported by the soak's verdict, not lost in a child's stderr
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        engine.dispose()
        results.put((dict(counts), failure))


class ShopWriter:
    """One random change per `step`; `counts` says what was applied (and what conflicted)."""

    def __init__(self, engine: sa.Engine, rng: random.Random, counts: Counter[str]) -> None:
        self.engine = engine
        self.rng = rng
        self.counts = counts
        self.customers = self._ids(sa.select(schema.customers.c.id))
        self.products = self._ids(sa.select(schema.products.c.id))
        self.orders = self._ids(sa.select(schema.orders.c.id)
                                .where(schema.orders.c.customer_id.is_not(None)))
        self.order_ids = self._ids(sa.select(schema.orders.c.id))
        self.deletable = {name: max(1, int(len(ids) * DELETE_SHARE)) for name, ids in
                          (("customers", self.customers), ("products", self.products),
                           ("orders", self.orders))}
        # New rows never reuse an id, as with an autoincrement column: a reused product id
        # would turn a deleted product (still on order lines) back into a product, and a
        # reused customer id would move a state key from one email to another.
        self.next_id = {
            "customers": 1 + self._highest(schema.customers.c.id, schema.orders.c.customer_id),
            "products": 1 + self._highest(schema.products.c.id, schema.order_lines.c.product_id),
        }

    def _ids(self, stmt: sa.Select[Any]) -> list[int]:
        with self.engine.connect() as conn:
            return [int(i) for i in conn.execute(stmt).scalars()]

    def _highest(self, *columns: sa.Column[int]) -> int:
        with self.engine.connect() as conn:
            return max(int(conn.execute(sa.select(sa.func.max(c))).scalar() or 0)
                       for c in columns)

    def step(self) -> None:
        name = self.rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        operation: Callable[[], bool] = getattr(self, name)
        try:
            done = operation()
        except sa.exc.OperationalError:  # SQLite: the shop file stayed locked too long
            self.counts["conflicts"] += 1
            return
        if done:
            self.counts[name] += 1
            self.counts[KIND.get(name, "updates")] += 1

    # -- updates --------------------------------------------------------------------------

    def rename_customer(self) -> bool:
        name = self.rng.choice(("Ana", "Bo", "Cleo", "Dara", "Emil", "Fern", "Gus", "Zoë"))
        mutate.rename_customer(self.engine, self.rng.choice(self.customers),
                               f"{name} {self.rng.randrange(1000)}")
        return True

    def set_order_status(self) -> bool:
        mutate.set_order_status(self.engine, self.rng.choice(self.order_ids),
                                self.rng.choice((1, 2, 3, 4, 5, 9)))
        return True

    def edit_line_quietly(self) -> bool:
        """An order line edited in place; the order's cursor does not move (only the rolling
        reconciliation can see it)."""
        lines = schema.order_lines
        order = self.rng.choice(self.order_ids)
        with self.engine.begin() as conn:
            line = conn.execute(sa.select(sa.func.min(lines.c.id))
                                .where(lines.c.order_id == order)).scalar()
            if line is None:
                return False
            conn.execute(lines.update().where(lines.c.id == line)
                         .values(quantity=self.rng.randrange(1, 9)))
        return True

    def set_product_price(self) -> bool:
        price = Decimal(self.rng.randrange(100, 20000)) / 100
        mutate.set_product_price(self.engine, self.rng.choice(self.products), price)
        return True

    def add_tag(self) -> bool:
        customer = self.rng.choice(self.customers)
        free = sorted(set(TAGS) - set(self._tags(customer)))
        if not free:
            return False
        mutate.add_tag(self.engine, customer, self.rng.choice(free))
        return True

    def remove_tag(self) -> bool:
        customer = self.rng.choice(self.customers)
        tags = self._tags(customer)
        if not tags:
            return False
        mutate.remove_tag(self.engine, customer, self.rng.choice(tags))
        return True

    def _tags(self, customer: int) -> list[str]:
        stmt = (sa.select(schema.tags.c.name)
                .join(schema.customer_tags, schema.customer_tags.c.tag_id == schema.tags.c.id)
                .where(schema.customer_tags.c.customer_id == customer)
                .order_by(schema.tags.c.name))
        with self.engine.connect() as conn:
            return [str(tag) for tag in conn.execute(stmt).scalars()]

    # -- inserts --------------------------------------------------------------------------

    def add_order(self) -> bool:
        customer = self.rng.choice(self.customers)
        with self.engine.connect() as conn:
            email = conn.execute(sa.select(schema.customers.c.email)
                                 .where(schema.customers.c.id == customer)).scalar_one()
        order = mutate.add_order(self.engine, email=str(email), customer_id=customer,
                                 lines=self._lines(), status=self.rng.choice((1, 2, 3)))
        self.orders.append(order)
        self.order_ids.append(order)
        return True

    def add_guest_order(self) -> bool:
        email = f"soak.guest{self.rng.randrange(40)}@example.net"  # guests come back, too
        order = mutate.add_order(self.engine, email=email, lines=self._lines())
        self.order_ids.append(order)
        return True

    def _lines(self) -> list[tuple[int, int]]:
        count = self.rng.randint(1, min(3, len(self.products)))
        return [(p, self.rng.randint(1, 4)) for p in self.rng.sample(self.products, count)]

    def add_customer(self) -> bool:
        stamp = datetime.now().replace(microsecond=0)
        new = self.next_id["customers"]
        with self.engine.begin() as conn:
            conn.execute(schema.customers.insert(), [{
                "id": new, "email": f"soak.new{new}@example.org",
                "first_name": "New", "last_name": f"Customer{new}",
                "newsletter": self.rng.choice("YN"), "created_at": stamp, "updated_at": stamp,
            }])
        self.next_id["customers"] += 1
        self.customers.append(new)
        return True

    def add_product(self) -> bool:
        stamp = datetime.now().replace(microsecond=0)
        new = self.next_id["products"]
        with self.engine.begin() as conn:
            conn.execute(schema.products.insert(), [{
                "id": new, "name": f"Soak Thing {new}", "sku": f"SOAK-{new}",
                "price": Decimal(self.rng.randrange(100, 9000)) / 100,
                "slug": f"soak-thing-{new}", "updated_at": stamp,
            }])
            conn.execute(schema.product_categories.insert(),
                         [{"product_id": new, "category_id": self.rng.randint(1, 6)}])
        self.next_id["products"] += 1
        self.products.append(new)
        return True

    # -- deletions (capped: see the module doc) -------------------------------------------

    def delete_order(self) -> bool:
        # Never the newest order (mutate.add_order takes the highest id + 1 for the next one),
        # nor one holding a deleted product's line (see the module doc).
        newest = max(self.order_ids)
        order = self.rng.choice(self.orders)
        if order == newest or self._holds_deleted_product(order) or not self._may_delete(
                "orders"):
            return False
        self.orders.remove(order)
        self.order_ids.remove(order)
        mutate.delete_order(self.engine, order)
        return True

    def _holds_deleted_product(self, order: int) -> bool:
        lines = schema.order_lines
        stmt = sa.select(sa.func.count()).select_from(lines).where(
            lines.c.order_id == order,
            lines.c.product_id.not_in(sa.select(schema.products.c.id)))
        with self.engine.connect() as conn:
            return bool(conn.execute(stmt).scalar_one())

    def delete_customer(self) -> bool:
        if not self._may_delete("customers") or len(self.customers) < 2:
            return False
        mutate.delete_customer(self.engine,
                               self.customers.pop(self.rng.randrange(len(self.customers))))
        return True

    def delete_product(self) -> bool:
        if not self._may_delete("products") or len(self.products) < 4:
            return False
        mutate.delete_product(self.engine,
                              self.products.pop(self.rng.randrange(len(self.products))))
        return True

    def _may_delete(self, table: str) -> bool:
        if self.deletable[table] <= 0:
            return False
        self.deletable[table] -= 1
        return True
