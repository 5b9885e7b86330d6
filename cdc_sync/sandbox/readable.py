"""A held record as a person reads it on the sandbox page: who or what, when, how much.

Metrilo's wire format is for machines (epoch milliseconds, bare numbers); the page shows the
same values as dates in the sandbox's local time (ISO 8601, with the offset), amounts with two
decimals and names, and keeps the raw JSON one click away. The JSON endpoints are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Readable:
    """The columns of one record on the page."""

    what: str  # a name: the customer's, the product's, the category's; the order's customer
    when: str  # createdAt as a local ISO date and time, or ""
    amount: str  # an order's amount, a product's price: two decimals, or ""
    status: str  # an order's status, a customer's subscription and tags, a product's categories


def readable(resource: str, record: dict[str, Any],
             customer: Callable[[str], dict[str, Any] | None] = lambda _email: None) -> Readable:
    """What the page shows of `record` (as Metrilo holds it) of `resource`; `customer` finds
    the customer held for an email, to name an order's buyer."""
    when = local_time(record.get("createdAt"))
    if resource == "customers":
        what = _person(record)
        tags = ", ".join(str(t) for t in record.get("tags") or ())
        subscribed = "subscribed" if record.get("subscribed") else "not subscribed"
        return Readable(what, when, "", f"{subscribed}{'; tags: ' + tags if tags else ''}")
    if resource == "orders":
        lines = record.get("products") or ()
        items = sum(_number(line.get("quantity")) or 0 for line in lines)
        email = record.get("email")
        buyer = _person(customer(str(email)) or {"email": email}) if email else "a guest"
        what = f"order {record.get('id', '')} by {buyer}"
        count = f"{items:g} item{'' if items == 1 else 's'}"
        return Readable(f"{what}, {count}", when, money(record.get("amount")),
                        str(record.get("status", "")))
    price = record.get("price")
    if price is None and record.get("options"):
        prices = [_number(o.get("price")) for o in record["options"]]
        price = min((p for p in prices if p is not None), default=None)
    categories = ", ".join(str(c) for c in record.get("categories") or ())
    return Readable(str(record.get("name", "")), when, money(price),
                    f"categories: {categories}" if categories else "")


def _person(customer: dict[str, Any]) -> str:
    """"Ann Lee <ann@example.com>", or the email alone when no name is held."""
    name = " ".join(str(customer[k]) for k in ("firstName", "lastName") if customer.get(k))
    email = str(customer.get("email") or "")
    return f"{name} <{email}>" if name else email


def local_time(millis: Any) -> str:
    """Epoch milliseconds as "2026-12-06 21:04:05+01:00" in the local time zone; "" if absent."""
    number = _number(millis)
    if number is None:
        return ""
    try:
        moment = datetime.fromtimestamp(number / 1000).astimezone()
    except (OverflowError, OSError, ValueError):  # far outside what a clock shows
        return str(millis)
    return moment.isoformat(sep=" ", timespec="seconds")


def money(value: Any) -> str:
    """A number with two decimals ("1234.50"); "" if absent, as given if not a number."""
    number = _number(value)
    if number is None:
        return "" if value is None else str(value)
    return f"{number:,.2f}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
