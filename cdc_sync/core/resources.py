"""The Metrilo resources cdc-sync keeps in step, their import order and endpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias

JSONValue: TypeAlias = Any
"""A value json.dumps accepts: str, int, float, bool, None, list, dict."""

Payload: TypeAlias = dict[str, JSONValue]
"""One Metrilo record as sent inside `params` or a `batch` item."""


class Resource(StrEnum):
    """A kind of record; the declaration order is Metrilo's import order."""

    CUSTOMERS = "customers"
    GUEST_CUSTOMERS = "guest_customers"
    CATEGORIES = "categories"
    DELETED_PRODUCTS = "deleted_products"
    PRODUCTS = "products"
    ORDERS = "orders"

    @property
    def endpoint(self) -> str:
        """The single-record path; the batch path is this plus `/batch`."""
        return _ENDPOINTS[self]

    @property
    def batch_path(self) -> str:
        return f"{self.endpoint}/batch"


_ENDPOINTS = {
    Resource.CUSTOMERS: "customer",
    Resource.GUEST_CUSTOMERS: "customer",
    Resource.CATEGORIES: "category",
    Resource.DELETED_PRODUCTS: "product",
    Resource.PRODUCTS: "product",
    Resource.ORDERS: "order",
}

IMPORT_ORDER: tuple[Resource, ...] = tuple(Resource)
"""Customers (and guests) before categories before (deleted) products before orders."""

TAG_PATH = "customer/tag"
UNTAG_PATH = "customer/untag"

ALL_PATHS: frozenset[str] = frozenset(
    {p for r in Resource for p in (r.endpoint, r.batch_path)} | {TAG_PATH, UNTAG_PATH}
)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A composed record with its source key.

    `key` is the canonical string form of the source key (see `compose.key_string`);
    `problems` lists why the record cannot be composed validly (a failed coercion, say):
    such a record is rejected with those reasons instead of being sent.
    `kept`: what state keeps of it once Metrilo accepted it, where that is not the payload
    itself (a guest keeps its first order: cycle/guests.py); None keeps what the planner keeps.
    """

    key: str
    payload: Payload
    problems: tuple[str, ...] = field(default=())
    kept: str | None = None
