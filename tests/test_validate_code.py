"""The contract's generated `fits` (core/fitscode.py) answers as the checks' own `fits` do.

The reference is the loop the generated code replaced: every field of the object looked up
by name, each checked by its check's `fits`. Valid records of every endpoint and the request
envelopes are mutated at random (fields dropped, nulled, unknown, of every wrong type, bad
strings, numbers out of range, nested lines and billing broken) and both must agree; and when
`fits` says yes, `explain` finds nothing.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from cdc_sync.core.checks import Check
from cdc_sync.core.validate import BATCH_ENVELOPE, SINGLE_ENVELOPE, SPECS, Spec, check_object

VALID: dict[str, dict[str, Any]] = {
    "customer": {"email": "a@b.co", "createdAt": 1_700_000_000_000, "firstName": "A",
                 "lastName": "B", "subscribed": True, "tags": ["vip", "x"]},
    "customer/tag": {"email": "a@b.co", "tags": ["vip"], "createdAt": 1_700_000_000_000},
    "customer/untag": {"email": "a@b.co", "tags": ["vip"]},
    "category": {"id": "1", "name": "Shoes", "url": "https://x/c/1"},
    "product": {"id": "5", "name": "P", "price": 9.5, "categories": ["1", "2"], "sku": "S",
                "imageUrl": "i", "url": "u",
                "options": [{"id": "o1", "name": "L", "price": 1, "sku": "s"},
                            {"id": "o2", "name": "M", "price": 2.5}]},
    "order": {"id": "7", "createdAt": 1_700_000_000_000, "amount": 10.5, "status": "done",
              "products": [{"productId": "5", "quantity": 2}, {"productId": "6", "quantity": 1}],
              "email": "a@b.co", "coupons": ["C"], "ipAddress": "1.2.3.4",
              "billing": {"address": "A", "city": "C", "countryCode": "DE", "phone": "1",
                          "postcode": "P", "paymentMethod": "card"}},
}
ENVELOPES = [
    (SINGLE_ENVELOPE, {"time": 1_700_000_000_000, "token": "t", "params": {},
                       "platform": "p", "pluginVersion": "1"}),
    (BATCH_ENVELOPE, {"time": 1_700_000_000_000, "token": "t", "batch": [{}, {"a": 1}]}),
]
ODD: list[Any] = [
    None, "", " ", "x", "a\x00b", "tab\there", "\x85", "a@b", "a@b.c", "A B@c.d", "de", "DE",
    0, 1, -1, 10**13, 10**5000, 1.5, float("nan"), float("inf"), True, False, [], ["x"],
    [1], [None], [{}], {}, {"id": "1"}, ("t",), b"b", 1_700_000_000, 1_700_000_000_000_000,
]


def _reference_fits(spec: Spec, value: Any) -> bool:
    if value.__class__ is not dict or not value.keys() >= set(spec.required):
        return False
    checks = {**spec.optional, **spec.required}
    for name, given in value.items():
        check = checks.get(name)
        if check is None or given is None or not _check_fits(check, given):
            return False
    return not any(rule(value) for rule in spec.rules)


def _check_fits(check: Check, value: Any) -> bool:
    if check.spec is not None:
        return _reference_fits(check.spec, value)
    return check.fits(value)


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        choice = rng.random()
        if choice < 0.15:
            del value[key]
        elif choice < 0.25:
            value[rng.choice(["extra", "Id", "price", "options"])] = rng.choice(ODD)
        elif choice < 0.6 and depth < 3:
            value[key] = _mutate(rng, value[key], depth + 1)
        else:
            value[key] = rng.choice(ODD)
        return value
    if isinstance(value, list) and value and rng.random() < 0.8:
        at = rng.randrange(len(value))
        value[at] = _mutate(rng, value[at], depth + 1) if rng.random() < 0.6 \
            else rng.choice(ODD)
        return value
    return rng.choice(ODD) if rng.random() < 0.5 else value


CASES = [(SPECS[endpoint], valid) for endpoint, valid in VALID.items()] + ENVELOPES


@pytest.mark.parametrize(("spec", "valid"), CASES, ids=[s.name + str(i) for i, (s, _) in
                                                          enumerate(CASES)])
def test_generated_fits_answers_as_the_checks_do(spec: Spec, valid: dict[str, Any]) -> None:
    assert spec.fits(valid)
    assert check_object(spec, "", valid) == []
    rng = random.Random(spec.name)
    answers = set()
    for _ in range(3000):
        value = valid
        for _ in range(rng.randint(1, 3)):
            value = _mutate(rng, copy.deepcopy(value))
        fits = spec.fits(value)
        assert fits == _reference_fits(spec, value), value
        if fits:
            assert check_object(spec, "", value) == [], value
        answers.add(fits)
    assert answers == {True, False}


def test_the_generated_fits_reads_as_the_contract() -> None:
    code = SPECS["order"].code
    assert "x0 = value.get('id')  # required" in code
    assert "return False  # an unknown field" in code
