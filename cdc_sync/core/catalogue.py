"""Which resources a mapping produces, and from what: the one place that says so (pure).

Engine, source, deletes, marks, `check`, `preview` and `status` all ask this module, so they
cannot disagree about whether guest customers or deleted products exist for a mapping.

- A direct resource (customers, categories, products, orders) exists when its block is there
  and enabled; its rows are read from its own mapping block.
- Guest customers exist when orders are mapped and `guest_customers` is enabled: they are the
  order emails no customer row has; without a `customers:` block every order email is a guest
  (Metrilo drops an order whose customer it does not know).
- Deleted products exist when products and orders are mapped, the orders' `products` child
  maps `productId` from a column, and `deleted_products` is enabled: they are the order-line
  products the products source no longer holds.

Derived resources follow the orders' cursor: an incremental read derives them from the orders
changed since the orders' high-water mark.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cdc_sync.core.resources import IMPORT_ORDER, Resource
from cdc_sync.mapping.model import MappingSpec, ResourceSpec

DIRECT: tuple[Resource, ...] = (
    Resource.CUSTOMERS, Resource.CATEGORIES, Resource.PRODUCTS, Resource.ORDERS,
)
DERIVED: tuple[Resource, ...] = (Resource.GUEST_CUSTOMERS, Resource.DELETED_PRODUCTS)

# The mapping sections whose edits change a resource's records. A derived resource changes
# with its bases' sections too. Fixed per resource (not narrowed to what is mapped): these
# name the fingerprint state stores, so adding a `customers:` block is itself an edit.
_MAPPING_PARTS: dict[Resource, tuple[str, ...]] = {
    Resource.GUEST_CUSTOMERS: ("customers", "orders", "guest_customers"),
    Resource.DELETED_PRODUCTS: ("products", "orders", "deleted_products"),
}


@dataclass(frozen=True)
class Entry:
    """One resource a mapping produces.

    `built_from`: the resources whose mapped rows it is read from (itself for a direct one).
    `basis`: for a derived resource, the mapped resource whose *absence* of a row defines it
    (a guest is an email no customer has): emptying that source would turn every order into
    a guest or a deleted product, so the delete guard looks at it first.
    `cursor_of`: the resource whose cursor column and high-water mark incremental reads use.
    """

    resource: Resource
    spec: ResourceSpec | None
    built_from: tuple[Resource, ...]
    basis: Resource | None
    mapping_parts: tuple[str, ...]
    cursor_of: Resource
    cursor: str | None

    @property
    def derived(self) -> bool:
        return self.resource in DERIVED

    @property
    def endpoint(self) -> str:
        return self.resource.endpoint

    @property
    def position(self) -> int:
        """Its place in Metrilo's import order (0 first)."""
        return IMPORT_ORDER.index(self.resource)


class Catalogue:
    """The resources of one mapping, in Metrilo's import order."""

    def __init__(self, spec: MappingSpec) -> None:
        self.mapping = spec
        found = (_entry(spec, resource) for resource in IMPORT_ORDER)
        self.entries: tuple[Entry, ...] = tuple(e for e in found if e is not None)
        self._by_resource = {e.resource: e for e in self.entries}

    def resources(self) -> list[Resource]:
        """The resources this mapping produces, in import order."""
        return [e.resource for e in self.entries]

    def entry(self, resource: Resource) -> Entry | None:
        return self._by_resource.get(resource)

    def __contains__(self, resource: object) -> bool:
        return resource in self._by_resource

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def spec(self, resource: Resource) -> ResourceSpec | None:
        """The enabled mapping block of a direct resource (None: unmapped, disabled, derived)."""
        entry = self._by_resource.get(resource)
        return entry.spec if entry is not None else None

    def cursor(self, resource: Resource) -> str | None:
        """The cursor column incremental reads of `resource` follow, or None."""
        entry = self._by_resource.get(resource)
        return entry.cursor if entry is not None else None

    def mapping_parts(self, resource: Resource) -> tuple[str, ...]:
        """The mapping sections `resource`'s records come from (even when it is not mapped)."""
        return _MAPPING_PARTS.get(resource, (resource.value,))


def direct_spec(spec: MappingSpec, resource: Resource) -> ResourceSpec | None:
    """The enabled block of a direct resource in `spec`, or None."""
    if resource not in DIRECT:
        return None
    found: ResourceSpec | None = getattr(spec, resource.value)
    return found if found is not None and found.enabled else None


def _entry(spec: MappingSpec, resource: Resource) -> Entry | None:
    parts = _MAPPING_PARTS.get(resource, (resource.value,))
    own = direct_spec(spec, resource)
    if own is not None:
        return Entry(resource, own, (resource,), None, parts, resource, own.cursor)
    orders = direct_spec(spec, Resource.ORDERS)
    if orders is None:
        return None
    if resource is Resource.GUEST_CUSTOMERS and spec.guest_customers.enabled:
        customers = direct_spec(spec, Resource.CUSTOMERS)
        basis = Resource.CUSTOMERS if customers is not None else None
        built = (Resource.ORDERS,) if basis is None else (Resource.ORDERS, Resource.CUSTOMERS)
        return Entry(resource, None, built, basis, parts, Resource.ORDERS, orders.cursor)
    if resource is Resource.DELETED_PRODUCTS and _deleted_products_on(spec, orders):
        built = (Resource.ORDERS, Resource.PRODUCTS)
        return Entry(resource, None, built, Resource.PRODUCTS, parts, Resource.ORDERS,
                     orders.cursor)
    return None


def _deleted_products_on(spec: MappingSpec, orders: ResourceSpec) -> bool:
    """Deleted products need products mapped and order lines naming a product id column."""
    if not spec.deleted_products.enabled or direct_spec(spec, Resource.PRODUCTS) is None:
        return False
    lines = orders.children.get("products")
    product_id = (lines.fields or {}).get("productId") if lines is not None else None
    return product_id is not None and product_id.column is not None
