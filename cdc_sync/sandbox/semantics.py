"""How Metrilo folds a received record into what it already holds, per contract path.

Customers are keyed by email; categories, products and orders by id. Every field is replaced
on each upsert except customer `tags` (merged; removed only by customer/untag) and product
`options` (merged by option id). Tagging a customer Metrilo does not hold does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cdc_sync.core.resources import Payload

Merge = Callable[[Payload | None, Payload], Payload | None]
"""(record held or None, record received) -> record to hold, or None to ignore the item."""

RESOURCES = ("customers", "categories", "products", "orders")


@dataclass(frozen=True, slots=True)
class Operation:
    """What a contract path does to the store."""

    resource: str
    key: str  # the field that identifies the record
    merge: Merge
    endpoint: str  # the single-record endpoint whose validation rules apply


def replace(_held: Payload | None, received: Payload) -> Payload:
    return received


def upsert_customer(held: Payload | None, received: Payload) -> Payload:
    if not held or not held.get("tags"):
        return received
    return {**received, "tags": _union(held["tags"], received.get("tags", ()))}


def add_tags(held: Payload | None, received: Payload) -> Payload | None:
    if held is None:
        return None
    return {**held, "tags": _union(held.get("tags", ()), received["tags"])}


def remove_tags(held: Payload | None, received: Payload) -> Payload | None:
    if held is None:
        return None
    removed = set(received["tags"])
    return {**held, "tags": [tag for tag in held.get("tags", ()) if tag not in removed]}


def upsert_product(held: Payload | None, received: Payload) -> Payload:
    if not held or not held.get("options"):
        return received
    by_id = {option["id"]: option for option in held["options"]}
    for option in received.get("options", ()):
        by_id[option["id"]] = option  # a re-sent option replaces the held one, in place
    return {**received, "options": list(by_id.values())}


def _union(held: Iterable[str], received: Iterable[str]) -> list[str]:
    return list(dict.fromkeys([*held, *received]))


def _pair(endpoint: str, resource: str, key: str, merge: Merge) -> dict[str, Operation]:
    operation = Operation(resource, key, merge, endpoint)
    return {endpoint: operation, f"{endpoint}/batch": operation}


OPERATIONS: dict[str, Operation] = {
    **_pair("customer", "customers", "email", upsert_customer),
    **_pair("category", "categories", "id", replace),
    **_pair("product", "products", "id", upsert_product),
    **_pair("order", "orders", "id", replace),
    "customer/tag": Operation("customers", "email", add_tags, "customer/tag"),
    "customer/untag": Operation("customers", "email", remove_tags, "customer/untag"),
}
"""Contract path (without /v2/) -> its operation; exactly the paths Metrilo serves."""


def is_batch(path: str) -> bool:
    return path.endswith("/batch")


def resource_named(name: str) -> str | None:
    """The resource for "customers" or "customer" (either spelling in URLs); None if none."""
    if name in RESOURCES:
        return name
    plural = "categories" if name == "category" else f"{name}s"
    return plural if plural in RESOURCES else None
