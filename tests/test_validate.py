"""The Metrilo contract checks, rule by rule: each case changes one field of a valid record."""

from __future__ import annotations

from typing import Any

import pytest

from cdc_sync.core.validate import (
    BATCH_ENVELOPE,
    SINGLE_ENVELOPE,
    SPECS,
    check_object,
    validate,
    validate_envelope,
)
from cdc_sync.errors import UnknownEndpointError

MS = 1_518_004_715_732  # 2018-02-07 in ms

VALID: dict[str, dict[str, Any]] = {
    "customer": {
        "email": "ann@example.com",
        "createdAt": MS,
        "firstName": "Ann",
        "lastName": "Lee",
        "subscribed": True,
        "tags": ["vip"],
    },
    "customer/tag": {"email": "ann@example.com", "tags": ["vip"]},
    "customer/untag": {"email": "ann@example.com", "tags": ["vip"], "createdAt": MS},
    "category": {"id": "12", "name": "Clothing", "url": "https://shop.example/c/12"},
    "product": {
        "id": "91",
        "name": "Blue shirt",
        "price": 23.65,
        "categories": ["12"],
        "sku": "CM01",
        "imageUrl": "https://shop.example/91.jpg",
        "url": "https://shop.example/p/91",
        "options": [{"id": "52", "name": "XS", "price": 15.99, "sku": "CM01-XS", "imageUrl": ""}],
    },
    "order": {
        "id": "14",
        "createdAt": MS,
        "amount": 308.42,
        "status": "completed",
        "products": [{"productId": "91", "quantity": 2}],
        "email": "ann@example.com",
        "coupons": ["EASTER15"],
        "billing": {
            "address": "15 Somewhere Road\nBrynmenyn",
            "city": "Bridgend",
            "countryCode": "GB",
            "phone": "01559 032133",
            "postcode": "NW1 4DF",
            "paymentMethod": "PayPal",
        },
        "ipAddress": "203.0.113.9",
    },
}

MINIMAL: dict[str, dict[str, Any]] = {
    "customer": {"email": "a@b.co", "createdAt": MS},
    "category": {"id": "1", "name": "C"},
    "product": {"id": "1", "name": "P", "price": 0},
    "order": {"id": "1", "createdAt": MS, "amount": 0, "status": "new", "products": []},
}


def changed(endpoint: str, **fields: Any) -> dict[str, Any]:
    """The valid record of `endpoint` with `fields` set (a value of ... removes the field)."""
    record = {**VALID[endpoint]}
    for name, value in fields.items():
        if value is ...:
            record.pop(name, None)
        else:
            record[name] = value
    return record


@pytest.mark.parametrize("endpoint", sorted(VALID))
def test_full_valid_record_has_no_reasons(endpoint: str) -> None:
    assert validate(endpoint, VALID[endpoint]) == []


@pytest.mark.parametrize("endpoint", sorted(MINIMAL))
def test_minimal_valid_record_has_no_reasons(endpoint: str) -> None:
    assert validate(endpoint, MINIMAL[endpoint]) == []


# (endpoint, changed fields, text that must appear in the one reason)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    # required fields
    ("customer", {"email": ...}, "email: is required"),
    ("customer", {"createdAt": ...}, "createdAt: is required"),
    ("customer", {"createdAt": None}, "createdAt: is required (customer) (got null)"),
    ("customer/tag", {"tags": ...}, "tags: is required"),
    ("category", {"name": ...}, "name: is required"),
    ("product", {"id": ...}, "id: is required"),
    ("order", {"status": ...}, "status: is required"),
    ("order", {"products": ...}, "products: is required"),
    ("order", {"amount": ...}, "amount: is required"),
    # ids are strings, not empty
    ("category", {"id": 12}, "id: must be a string, got the number 12"),
    ("product", {"id": ""}, "id: must not be empty"),
    ("product", {"categories": ["12", 13]}, "categories[1]: must be a string, got the number 13"),
    # timestamps: integer ms, plausible
    ("customer", {"createdAt": 1_518_004_715}, "got 1518004715 (seconds?)"),
    ("customer", {"createdAt": 1_518_004_715_732_000}, "(microseconds?)"),
    ("customer", {"createdAt": -5}, "createdAt: is before 1970"),
    ("customer", {"createdAt": 5_000}, "is before 1990-01-01"),
    ("order", {"createdAt": 9_000_000_000_000}, "is after 2100-01-01"),
    ("order", {"createdAt": float(MS)}, "createdAt: must be an integer number of milliseconds"),
    ("order", {"createdAt": "2018-02-07"}, "got the string '2018-02-07'"),
    ("customer", {"createdAt": True}, "milliseconds since 1970, got true"),
    # numbers: finite, no bool, not absurd
    ("order", {"amount": float("nan")}, "amount: must be a finite number, got nan"),
    ("order", {"amount": float("inf")}, "amount: must be a finite number"),
    ("order", {"amount": True}, "amount: must be a number, got true"),
    ("order", {"amount": "12.50"}, "amount: must be a number, got the string '12.50'"),
    ("product", {"price": 2e12}, "price: is absurdly large"),
    # email
    ("customer", {"email": "not-an-email"}, "email: does not look like an email address"),
    ("customer", {"email": "a b@example.com"}, "does not look like an email address"),
    ("order", {"email": "ann@localhost"}, "email: does not look like an email address"),
    # strings: no control characters, not empty where required
    ("customer", {"firstName": "An\x00n"}, "firstName: contains the control character U+0000"),
    ("category", {"name": "Bad\x1bname"}, "contains the control character U+001B at position 3"),
    ("category", {"name": "   "}, "name: must not be empty"),
    ("customer", {"lastName": 7}, "lastName: must be a string, got 7"),
    ("customer", {"subscribed": "yes"}, "subscribed: must be true or false"),
    # lists of strings
    ("customer", {"tags": "vip"}, "tags: must be a list, got the string 'vip'"),
    ("customer", {"tags": ["vip", ""]}, "tags[1]: must not be empty"),
    ("customer/untag", {"tags": []}, "tags: must not be empty"),
    ("order", {"coupons": [None]}, "coupons[0]: must be a string, got null"),
    # products: price unless options; options items
    ("product", {"price": ..., "options": ...}, "price: is required for a product without options"),
    ("product", {"price": ..., "options": []}, "price: is required for a product without options"),
    ("product", {"options": [{"id": "1", "name": "S"}]}, "options[0].price: is required"),
    ("product", {"options": [{"id": 1, "name": "S", "price": 1}]}, "options[0].id: must be a str"),
    ("product", {"options": [{"id": "1", "name": "S", "price": 1, "colour": "red"}]},
     "options[0].colour: is not a product option field"),
    ("product", {"options": [{"id": "1", "name": "S", "price": 1},
                             {"id": "1", "name": "M", "price": 2}]},
     "options[1].id: repeats options[0].id '1'"),
    ("product", {"options": ["S"]}, "options[0]: must be an object, got the string 'S'"),
    # order lines
    ("order", {"products": [{"productId": 91, "quantity": 1}]}, "products[0].productId: must be a"),
    ("order", {"products": [{"productId": "91", "quantity": 0}]},
     "products[0].quantity: must be greater than 0, got 0"),
    ("order", {"products": [{"productId": "91"}]}, "products[0].quantity: is required"),
    ("order", {"products": {"productId": "91", "quantity": 1}}, "products: must be a list"),
    # billing
    ("order", {"billing": {"countryCode": "gb"}}, "billing.countryCode: must be an ISO 3166-1"),
    ("order", {"billing": {"countryCode": "GBR"}}, "billing.countryCode: must be an ISO 3166-1"),
    ("order", {"billing": {"postcode": 12345}}, "billing.postcode: must be a string, got 12345"),
    ("order", {"billing": {"street": "x"}}, "billing.street: is not a billing field"),
    ("order", {"billing": "Main St"}, "billing: must be an object"),
    # unknown fields and nulls
    ("customer", {"fristName": "Ann"}, "fristName: is not a customer field Metrilo knows"),
    ("order", {"shipping": {}}, "shipping: is not a order field"),
    ("customer", {"phone": "123"}, "phone: is not a customer field"),
    ("customer", {"firstName": None}, "firstName: is null; omit the field instead"),
]


@pytest.mark.parametrize(
    ("endpoint", "fields", "expected"),
    INVALID,
    ids=[f"{e}-{'-'.join(f)}-{i}" for i, (e, f, _) in enumerate(INVALID)],
)
def test_invalid_field_gives_one_reason_naming_it(
    endpoint: str, fields: dict[str, Any], expected: str
) -> None:
    reasons = validate(endpoint, changed(endpoint, **fields))
    assert len(reasons) == 1, reasons
    assert expected in reasons[0]


def test_every_problem_is_reported_not_just_the_first() -> None:
    reasons = validate("order", {"id": 1, "createdAt": 1, "products": [{"quantity": -1}]})
    fields = sorted(reason.split(":")[0] for reason in reasons)
    assert fields == [
        "amount", "createdAt", "id", "products[0].productId", "products[0].quantity", "status",
    ]


@pytest.mark.parametrize("value", [None, [], "customer", 3])
def test_record_that_is_not_an_object_is_refused(value: Any) -> None:
    assert validate("customer", value) == [f"customer: must be an object, got {_shown(value)}"]


def _shown(value: Any) -> str:
    return {type(None): "null", list: "a list", str: "the string 'customer'", int: "3"}[type(value)]


def test_tab_newline_and_carriage_return_are_allowed_in_strings() -> None:
    assert validate("category", {"id": "1", "name": "a\tb\nc\r\nd"}) == []


def test_product_with_options_needs_no_price() -> None:
    assert validate("product", changed("product", price=...)) == []


@pytest.mark.parametrize("endpoint", ["customer/batch", "orders", ""])
def test_unknown_endpoint_is_a_caller_error(endpoint: str) -> None:
    with pytest.raises(UnknownEndpointError, match="unknown Metrilo endpoint"):
        validate(endpoint, {})


# (envelope, is a batch path, text one reason must contain; None when valid)
ENVELOPES: list[tuple[dict[str, Any], bool, str | None]] = [
    ({"time": MS, "token": "t", "params": {}}, False, None),
    ({"time": MS, "token": "t", "platform": "pg", "pluginVersion": "1", "batch": [{}]}, True, None),
    ({"time": MS // 1000, "token": "t", "params": {}}, False, "time: must be an integer number"),
    ({"time": MS, "params": {}}, False, "token: is required"),
    ({"time": MS, "token": "t", "batch": [{}]}, False, "params: is required"),
    ({"time": MS, "token": "t", "params": {}, "batch": [{}]}, False,
     "batch: is not a request body field Metrilo knows (single-record paths take `params`"),
    ({"time": MS, "token": "t", "params": {}}, True, "batch: is required"),
    ({"time": MS, "token": "t", "batch": []}, True, "batch: must not be empty"),
    ({"time": MS, "token": "t", "batch": [1]}, True, "batch[0]: must be an object"),
]


@pytest.mark.parametrize(("envelope", "batch", "expected"), ENVELOPES)
def test_envelope_checks(envelope: dict[str, Any], batch: bool, expected: str | None) -> None:
    reasons = validate_envelope(envelope, batch=batch)
    if expected is None:
        assert reasons == []
    else:
        assert any(expected in reason for reason in reasons), reasons


# --- the fast path (`fits`) never says yes where the full check finds a reason ---------------


class _Text(str):
    """A str subclass: the fast path may decline it, the answer must not change."""


class _Count(int):
    """An int subclass (IntEnum-like)."""


TRICKY: list[Any] = [
    None, True, False, 0, 1, -1, 2, 1.5, -0.0, 0.1, float("nan"), float("inf"), float("-inf"),
    1e12, 1e12 + 1, -1e12, -1e12 - 1, 10**12, 10**12 + 1, 10**13, 2**1100,
    MS, float(MS), _Count(MS), 631_152_000_000, 631_151_999_999, 4_102_444_799_999,
    4_102_444_800_000, "", " ", "\t", "\n", "a", "12", "Zoë", "a\tb", "a\x00b", "a\x7f",
    "a\x85", "\xa0", "a\u2028b", "\u3000", _Text("a"), _Text(""), "DE", "de", "D", "DEU", "Ä1",
    "a@b.co", "ann@example.com", "a@b.", "a@.c", "a@b..c", "a@b.c.", "@b.c", "a@b", "a b@c.de",
    "a@b@c.de", "a@b.c\n", "ä@ö.de", "a\xa0@b.co", "a\x00@b.co", "a@b.c d", "x" * 250 + "@b.co",
    "x" * 245 + "@b.co", [], [""], ["a"], ["a", "a"], [1], [None], {}, {"id": "1"}, (),
]


def _variants(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record with each field (and a field it does not have) set to each tricky value."""
    found = []
    for name in [*record, "unknown"]:
        found += [{**record, name: value} for value in TRICKY]
    return found


def _nested_variants() -> list[tuple[str, dict[str, Any]]]:
    order, product = VALID["order"], VALID["product"]
    found = [("order", {**order, "billing": inner}) for inner in _variants(order["billing"])]
    found += [("order", {**order, "products": [line, *order["products"]]})
              for line in _variants(order["products"][0])]
    found += [("product", {**product, "options": [option, *product["options"]]})
              for option in _variants(product["options"][0])]
    found += [("product", {**product, "options": [*product["options"], {**option, "id": "53"}]})
              for option in _variants(product["options"][0])]
    return found


FAST_PATH_CASES = [
    *((endpoint, record) for endpoint in sorted(VALID) for record in _variants(VALID[endpoint])),
    *((name, record) for name in sorted(MINIMAL) for record in _variants(MINIMAL[name])),
    *_nested_variants(),
]


def test_fast_path_gives_the_full_checks_answer_on_every_tricky_value() -> None:
    # validate() answers [] from the fast path alone; check_object() always explains in full.
    disagreements = [
        (endpoint, record)
        for endpoint, record in FAST_PATH_CASES
        if validate(endpoint, record) != check_object(SPECS[endpoint], "", record)
    ]
    assert disagreements == []
    valid = sum(1 for endpoint, record in FAST_PATH_CASES if not validate(endpoint, record))
    assert 100 < valid < len(FAST_PATH_CASES) - 1000  # both answers are well represented


def test_fast_path_declines_subclasses_and_unusual_text_without_rejecting_them() -> None:
    assert validate("category", {"id": _Text("1"), "name": "a\xa0b"}) == []
    assert validate("customer", {"email": "Zoë@exämple.de", "createdAt": _Count(MS)}) == []
    assert validate("order", {**MINIMAL["order"], "amount": -0.0, "email": "a@b..co"}) == []


@pytest.mark.parametrize("batch", [False, True])
def test_envelope_fast_path_gives_the_full_checks_answer(batch: bool) -> None:
    spec = BATCH_ENVELOPE if batch else SINGLE_ENVELOPE
    base: dict[str, Any] = {"time": MS, "token": "t", "platform": "pg", "pluginVersion": "1"}
    base |= {"batch": [{}]} if batch else {"params": {}}
    for envelope in _variants(base):
        assert validate_envelope(envelope, batch=batch) == check_object(spec, "", envelope)
