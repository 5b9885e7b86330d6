"""Changes in child tables only (issue 12.7), the records they must resend, and the check.

The changes are spread over the demo shop's child tables and touch no parent row, as a legacy
shop's link and line tables change:
- an order line appended to an existing order (`order_lines`, the mapping's append key `id`);
- a coupon added to an order (`order_coupons`);
- a product moved to another category (`product_categories`: one link deleted, one added);
- a tag put on a customer (`customer_tags`).
How each one reaches Metrilo is what the mapping says of its table (`core.dependencies`, as
`cdc-sync check` prints it): a table with a cursor or append key is followed, so the next
incremental cycle must re-read and send exactly its parents; the three link tables have
neither a timestamp nor a growing key, so no cursor the schema allows, and their changes
arrive by the rolling reconciliation: the slice that reads a parent's key range must send it.
`sent_since` reads from the state DB which records a cycle sent, so a change missed (or a
record sent that nothing changed) fails the benchmark instead of passing as a faster cycle.
"""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cdc_sync.core.catalogue import Catalogue
from cdc_sync.core.dependencies import Seen, dependency_map
from cdc_sync.core.resources import Resource
from cdc_sync.demo import schema
from cdc_sync.mapping.loader import load_mapping
from cdc_sync.state import meta_keys

MIX = (("lines", 0.5), ("coupons", 0.2), ("links", 0.15), ("tags", 0.15))
"""Share of the changes per kind: order lines are the child rows a shop adds most."""

KINDS: dict[str, tuple[Resource, str]] = {
    "lines": (Resource.ORDERS, "children.products"),
    "coupons": (Resource.ORDERS, "children.coupons"),
    "links": (Resource.PRODUCTS, "children.categories"),
    "tags": (Resource.CUSTOMERS, "children.tags"),
}
"""Each kind of change: the resource whose records it changes, the mapping part that reads it."""

FOLLOWED = (Seen.CURSOR, Seen.APPEND, Seen.WATCHED)


class MissedChange(RuntimeError):
    """A cycle did not send what the changes it should see required (or sent more)."""


@dataclass
class ChildChanges:
    """What was changed: per kind, the parent keys, and how the mapping sees that table."""

    parents: dict[str, list[int]] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)  # kind -> e.g. "append key id"
    followed: dict[str, bool] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(len(keys) for keys in self.parents.values())

    def expected(self, *, followed: bool) -> dict[str, set[str]]:
        """Per resource, the keys whose changes the followed (or the other) tables carry."""
        out: dict[str, set[str]] = {}
        for kind, keys in self.parents.items():
            if self.followed[kind] == followed:
                out.setdefault(KINDS[kind][0].value, set()).update(str(k) for k in keys)
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def detection(mappings: Path) -> tuple[dict[str, str], dict[str, bool], int]:
    """How the mapping sees each kind's table: its `check` wording, whether it is followed;
    and the cursors' overlap (seconds re-read before a high-water mark)."""
    mapping = load_mapping(mappings)
    found = dependency_map(Catalogue(mapping.spec), None)
    seen: dict[str, str] = {}
    followed: dict[str, bool] = {}
    for kind, (resource, via) in KINDS.items():
        dep = next((d for d in found.by_resource[resource] if d.via == via), None)
        if dep is None:
            raise MissedChange(f"the mapping has no {resource.value}.{via}: the benchmark's "
                               "child changes need the demo mapping")
        seen[kind] = dep.how()
        followed[kind] = dep.seen in FOLLOWED
    return seen, followed, mapping.spec.sync.cursor_overlap_seconds


def change_children(url: str, mappings: Path, count: int, *, seed: int) -> ChildChanges:
    """Make `count` child-only changes (split per MIX) in the shop at `url`; every parent is
    changed once, the orders given a line and those given a coupon are distinct.

    The parents are chosen among those the next incremental cycle does not re-read anyway:
    rows within the cursor's overlap of its high-water mark are read again every cycle, and
    would carry a cursor-less child change with them (which is right, but not what the
    benchmark measures)."""
    seen, followed, overlap = detection(mappings)
    sizes = _split(count)
    rng = random.Random(seed)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            def quiet(table: sa.Table, n: int) -> list[int]:
                return _sample_ids(conn, table, n, rng, quiet_for=overlap + 60)

            orders = quiet(schema.orders, sizes["lines"] + sizes["coupons"])
            parents = {
                "lines": _add_lines(conn, orders[:sizes["lines"]], rng),
                "coupons": _add_coupons(conn, orders[sizes["lines"]:], seed),
                "links": _move_links(conn, quiet(schema.products, sizes["links"]), rng),
                "tags": _add_tags(conn, quiet(schema.customers, sizes["tags"] * 2),
                                  sizes["tags"], rng),
            }
    finally:
        engine.dispose()
    return ChildChanges(parents, seen, followed)


def _split(count: int) -> dict[str, int]:
    sizes = {kind: int(count * share) for kind, share in MIX}
    sizes["lines"] += count - sum(sizes.values())
    return sizes


def _sample_ids(conn: sa.Connection, table: sa.Table, count: int, rng: random.Random, *,
                quiet_for: int) -> list[int]:
    """`count` distinct ids of the table, spread over its whole range, in random order, of
    rows whose `updated_at` is at least `quiet_for` seconds before the latest."""
    latest = conn.execute(sa.select(sa.func.max(table.c.updated_at))).scalar_one()
    ids = list(conn.execute(sa.select(table.c.id).where(
        table.c.updated_at < latest - timedelta(seconds=quiet_for))).scalars())
    return rng.sample(ids, min(count, len(ids)))


def _add_lines(conn: sa.Connection, order_ids: list[int], rng: random.Random) -> list[int]:
    """One line per order, ids above every other line's (as a serial gives them)."""
    products = conn.execute(sa.select(schema.products.c.id, schema.products.c.name,
                                      schema.products.c.price)).all()
    first = conn.execute(sa.select(sa.func.coalesce(sa.func.max(schema.order_lines.c.id), 0))
                         ).scalar_one() + 1
    rows = []
    for offset, order_id in enumerate(sorted(order_ids)):
        product = rng.choice(products)
        rows.append({"id": first + offset, "order_id": order_id, "product_id": product.id,
                     "product_name": product.name, "unit_price": product.price,
                     "quantity": rng.randint(1, 3)})
    if rows:
        conn.execute(schema.order_lines.insert(), rows)
    return sorted(order_ids)


def _add_coupons(conn: sa.Connection, order_ids: list[int], seed: int) -> list[int]:
    code = f"BENCH-{seed % 10**9}"  # new to every order: the PK (order_id, code) holds
    if order_ids:
        conn.execute(schema.order_coupons.insert(),
                     [{"order_id": order_id, "code": code} for order_id in order_ids])
    return sorted(order_ids)


def _move_links(conn: sa.Connection, product_ids: list[int], rng: random.Random) -> list[int]:
    """Each product leaves one of its categories for one it is not in (or gains one)."""
    categories = list(conn.execute(sa.select(schema.categories.c.id)).scalars())
    links = schema.product_categories
    held: dict[int, set[int]] = {p: set() for p in product_ids}
    for product_id, category_id in conn.execute(
            sa.select(links.c.product_id, links.c.category_id)
            .where(links.c.product_id.in_(product_ids))):
        held[product_id].add(category_id)
    removed, added = [], []
    for product_id, current in held.items():
        free = [c for c in categories if c not in current]
        if current:
            removed.append((product_id, min(current)))
        if free:
            added.append({"product_id": product_id, "category_id": rng.choice(free)})
    for product_id, category_id in removed:
        conn.execute(links.delete().where(links.c.product_id == product_id,
                                          links.c.category_id == category_id))
    if added:
        conn.execute(links.insert(), added)
    return sorted(held)


def _add_tags(conn: sa.Connection, candidates: list[int], count: int,
              rng: random.Random) -> list[int]:
    """`count` of the candidate customers each get a tag they do not have yet."""
    tag_ids = list(conn.execute(sa.select(schema.tags.c.id)).scalars())
    held: dict[int, set[int]] = {}
    for customer_id, tag_id in conn.execute(sa.select(schema.customer_tags)):
        held.setdefault(customer_id, set()).add(tag_id)
    chosen = [c for c in candidates if len(held.get(c, ())) < len(tag_ids)][:count]
    rows = [{"customer_id": c, "tag_id": rng.choice([t for t in tag_ids
                                                      if t not in held.get(c, set())])}
            for c in chosen]
    if rows:
        conn.execute(schema.customer_tags.insert(), rows)
    return sorted(chosen)


# -- what a cycle sent, from the state DB ---------------------------------------------------


def _sqlite_path(state_url: str) -> str:
    return sa.make_url(state_url).database or ""


def synced_mark(state_url: str) -> str:
    """The latest `synced_at` in state: a cycle's sends are the rows synced after it."""
    with sqlite3.connect(_sqlite_path(state_url)) as conn:
        found = conn.execute("SELECT max(synced_at) FROM sync_state").fetchone()[0]
    return str(found or "")


def sent_since(state_url: str, mark: str) -> dict[str, set[str]]:
    """Per resource, the keys synced after `mark` (what the cycle since sent, with a 200)."""
    out: dict[str, set[str]] = {}
    with sqlite3.connect(_sqlite_path(state_url)) as conn:
        for resource, key in conn.execute(
                "SELECT resource, key FROM sync_state WHERE synced_at > ?", (mark,)):
            out.setdefault(resource, set()).add(key)
    return out


def rechecks(state_url: str) -> dict[str, set[str]]:
    """Per resource, the keys with a recheck scheduled (an attempt that got no answer, see
    `Outcome.recheck_after`): any cycle may send them again once due, whatever changed."""
    out: dict[str, set[str]] = {}
    with sqlite3.connect(_sqlite_path(state_url)) as conn:
        for resource, key in conn.execute(
                "SELECT resource, key FROM sync_state WHERE recheck_after IS NOT NULL"):
            out.setdefault(resource, set()).add(key)
    return out


def slice_reach(state_url: str) -> dict[str, int | None]:
    """Per resource, the last key its reconciliation window has read (None: all of them);
    resources whose window has not moved are left out."""
    out: dict[str, int | None] = {}
    with sqlite3.connect(_sqlite_path(state_url)) as conn:
        for resource in (r for r, _ in KINDS.values()):
            name = meta_keys.reconcile_window(resource)
            row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
            if row is None:
                continue
            window = json.loads(row[0])
            if window.get("source_done"):
                out[resource.value] = None
            elif window.get("after") is not None:
                out[resource.value] = int(window["after"])
    return out


def compare(what: str, sent: dict[str, set[str]], expected: dict[str, set[str]],
            tolerated: dict[str, set[str]] | None = None) -> None:
    """Fail loudly unless the cycle sent exactly the expected records (and, beside them, at
    most some of the `tolerated` ones: rechecks that were scheduled before it)."""
    problems = []
    for resource in sorted(set(sent) | set(expected)):
        got, wanted = sent.get(resource, set()), expected.get(resource, set())
        got = got - ((tolerated or {}).get(resource, set()) - wanted)
        if wanted - got:
            missing = sorted(wanted - got, key=_numeric)
            problems.append(f"{resource}: {len(missing)} changed record(s) not sent, e.g. "
                            f"{missing[:5]}")
        if got - wanted:
            extra = sorted(got - wanted, key=_numeric)
            problems.append(f"{resource}: {len(extra)} record(s) sent that no change "
                            f"explains, e.g. {extra[:5]}")
    if problems:
        raise MissedChange(f"{what}: " + "; ".join(problems))


def in_reach(keys: dict[str, set[str]], reach: dict[str, int | None]) -> dict[str, set[str]]:
    """The keys a reconciliation that read up to `reach` must have read again."""
    out: dict[str, set[str]] = {}
    for resource, found in keys.items():
        if resource not in reach:
            continue
        upto = reach[resource]
        out[resource] = {k for k in found if upto is None or int(k) <= upto}
    return out


def _numeric(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (0, key)
