"""Metrilo's required fields per resource, checked on the mapping alone (pure).

From the API contract: customer needs email and createdAt; category id and name; product id,
name and price (price may come from options instead); order id, createdAt, amount, status and
a products child whose lines have productId and quantity.
"""

from __future__ import annotations

from collections.abc import Iterator

from cdc_sync.core.resources import Resource
from cdc_sync.mapping.model import ChildSpec, ResourceSpec

Found = tuple[tuple[str | int, ...], str, str]
"""(YAML path, what is wrong, how to fix it)."""

_REQUIRED: dict[Resource, tuple[str, ...]] = {
    Resource.CUSTOMERS: ("email", "createdAt"),
    Resource.CATEGORIES: ("id", "name"),
    Resource.PRODUCTS: ("id", "name", "price"),
    Resource.ORDERS: ("id", "createdAt", "amount", "status"),
}
_CHILD_REQUIRED: dict[tuple[Resource, str], tuple[str, ...]] = {
    (Resource.ORDERS, "products"): ("productId", "quantity"),
    (Resource.PRODUCTS, "options"): ("id", "name", "price"),
}


def required_field_problems(resource: Resource, spec: ResourceSpec) -> Iterator[Found]:
    """Each Metrilo field the resource must send but the mapping does not give."""
    name = resource.value
    for field in _REQUIRED[resource]:
        if field == "price" and "options" in spec.children:
            continue  # Metrilo takes the price from the options then
        if field not in spec.fields:
            yield ((name, "fields"), f"{name} needs the Metrilo field {field!r}",
                   f"add `{field}: <column>` under {name}.fields")
    if resource is Resource.ORDERS and "products" not in spec.children:
        yield ((name, "children"), "orders need a products child (the order lines)",
               "add children.products with table:, parent_key: and fields: productId, quantity")
    for child_name, child in spec.children.items():
        yield from _child_problems(resource, child_name, child)


def _child_problems(resource: Resource, child_name: str, child: ChildSpec) -> Iterator[Found]:
    required = _CHILD_REQUIRED.get((resource, child_name))
    if required is None:
        return
    path = (resource.value, "children", child_name)
    if child.fields is None:
        yield (path, f"{child_name} must list objects (fields:), not a value",
               f"give fields: {', '.join(required)}")
        return
    for field in required:
        if field not in child.fields:
            yield ((*path, "fields"), f"{child_name} items need the Metrilo field {field!r}",
                   f"add `{field}: <column>` under {resource.value}.children.{child_name}.fields")
