"""A Metrilo record checked against the contract's Resources table: the reasons it would fail.

Metrilo answers 200 and drops bad records later, silently, so cdc-sync checks every record
before sending it (and the sandbox checks again on receipt). Each endpoint has a `Spec`: its
required and optional fields, each with a check, plus whole-record rules. Unknown fields are
reasons too: they are almost always a typo in mappings.yaml.

Every record of a push is checked, and almost all are fine, so each check comes in two parts:
`fits`, a yes/no answer that builds no path and no list (the fast path), and `explain`, which
finds every reason with its path. `fits` answering True promises that `explain` finds nothing;
False only means "look closer" (it may be stricter, e.g. about subclasses of str), so the
reasons a record gets are always those of `explain`. The checks of single values are in
core/checks.py; the specs, made of them, and whole-object checks are here.

Pure: no I/O, no third-party imports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cdc_sync.core.checks import (
    ANY_OBJECT,
    BOOLEAN,
    COUNTRY_CODE,
    EMAIL,
    ID,
    NAME,
    NUMBER,
    POSITIVE_NUMBER,
    TEXT,
    TIMESTAMP,
    Check,
    Fits,
    describe,
    list_of,
)
from cdc_sync.core.fitscode import object_fits
from cdc_sync.core.resources import Payload
from cdc_sync.errors import UnknownEndpointError

Rule = Callable[[Mapping[str, Any]], list[str]]
"""A whole-object rule (fields that depend on each other) -> reasons."""


@dataclass(frozen=True, slots=True)
class Spec:
    """The shape of one kind of JSON object: its fields and the rules between them.

    `fits` is written as code from the fields' checks once, when the spec is made
    (core/fitscode.py); `code` is its source.
    """

    name: str
    required: Mapping[str, Check]
    optional: Mapping[str, Check] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    unknown_hint: str = "a typo in the mapping?"
    fits: Fits = field(init=False, repr=False, compare=False)
    code: str = field(init=False, repr=False, compare=False)  # the source of `fits`

    def __post_init__(self) -> None:
        fits, code = object_fits(self)
        object.__setattr__(self, "fits", fits)
        object.__setattr__(self, "code", code)


def validate(endpoint: str, payload: Payload) -> list[str]:
    """Why Metrilo would refuse `payload` sent to `endpoint` ("customer", "order"...); [] if ok.

    A batch item is checked with its single-record endpoint's spec.
    """
    spec = SPECS.get(endpoint)
    if spec is None:
        raise UnknownEndpointError(
            f"validate: unknown Metrilo endpoint {endpoint!r}; use one of {', '.join(SPECS)}"
        )
    if spec.fits(payload):
        return []
    return check_object(spec, "", payload)


ORDER_WITHOUT_EMAIL = (
    "email: missing: Metrilo keeps an order only for a customer it knows, and an order sent "
    "again without an email loses its customer there; give the order its email in the shop "
    "(the customer's, or the join that reads it) and it is sent again by itself"
)


def reasons_to_hold(endpoint: str, payload: Payload) -> list[str]:
    """Why cdc-sync holds `payload` back: `validate`'s reasons, and what Metrilo takes but loses.

    The API accepts an order without `email`, but "an order won't be imported if Metrilo
    doesn't know about the customer": a new one is dropped, and an order sent before (whose
    customer's email was then cleared, or whose join stopped matching) would be replaced by
    one without its customer. Neither is worth sending; both are rejected with the reason.
    The sandbox checks `validate` only, as Metrilo does.
    """
    reasons = validate(endpoint, payload)
    if endpoint == "order" and payload.get("email") is None:
        reasons.append(ORDER_WITHOUT_EMAIL)
    return reasons


def validate_envelope(envelope: Any, *, batch: bool) -> list[str]:
    """Why a request body's envelope (time, token, params or batch) is malformed; [] if fine.

    The records inside are not checked here: pass each to `validate`.
    """
    spec = BATCH_ENVELOPE if batch else SINGLE_ENVELOPE
    return [] if spec.fits(envelope) else check_object(spec, "", envelope)


def check_object(spec: Spec, path: str, value: Any) -> list[str]:
    """Reasons `value` does not fit `spec`, each naming the field by its path from `path`."""
    if not isinstance(value, dict):
        return [f"{path or spec.name}: must be an object, got {describe(value)}"]
    reasons: list[str] = []
    for name, check in spec.required.items():
        inner = _join(path, name)
        given = value.get(name)
        if given is None:
            got = " (got null)" if name in value else ""
            reasons.append(f"{inner}: is required ({spec.name}){got}")
        else:
            reasons.extend(check.explain(inner, given))
    for name, given in value.items():
        if name in spec.required:
            continue
        optional = spec.optional.get(name)
        if optional is None:
            reasons.append(_unknown_field(spec, _join(path, name)))
        elif given is None:
            reasons.append(f"{_join(path, name)}: is null; omit the field instead")
        else:
            reasons.extend(optional.explain(_join(path, name), given))
    for rule in spec.rules:
        reasons.extend(_join(path, reason) for reason in rule(value))
    return reasons


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _unknown_field(spec: Spec, path: str) -> str:
    known = ", ".join([*spec.required, *spec.optional])
    return (
        f"{path}: is not a {spec.name} field Metrilo knows ({spec.unknown_hint}); "
        f"known fields: {known}"
    )


def _object(spec: Spec) -> Check:
    def explain(path: str, value: Any) -> list[str]:
        return check_object(spec, path, value)

    return Check(explain, spec.fits, spec=spec)


def _price_unless_options(product: Mapping[str, Any]) -> list[str]:
    if "price" in product or product.get("options"):
        return []
    return ["price: is required for a product without options"]


def _unique_option_ids(product: Mapping[str, Any]) -> list[str]:
    options = product.get("options")
    if not isinstance(options, list):
        return []
    seen: dict[Any, int] = {}
    reasons: list[str] = []
    for index, option in enumerate(options):
        option_id = option.get("id") if isinstance(option, dict) else None
        if isinstance(option_id, str) and option_id in seen:
            reasons.append(f"options[{index}].id: repeats options[{seen[option_id]}].id "
                           f"{option_id!r}")
        elif isinstance(option_id, str):
            seen[option_id] = index
    return reasons


# --- the contract, one spec per endpoint -------------------------------------------------------

_TAGS = list_of(NAME)

OPTION = Spec(
    "product option",
    required={"id": ID, "name": NAME, "price": NUMBER},
    optional={"sku": TEXT, "imageUrl": TEXT},
)
ORDER_LINE = Spec("order line", required={"productId": ID, "quantity": POSITIVE_NUMBER})
BILLING = Spec(
    "billing",
    required={},
    optional={
        "address": TEXT,
        "city": TEXT,
        "countryCode": COUNTRY_CODE,
        "phone": TEXT,
        "postcode": TEXT,
        "paymentMethod": TEXT,
    },
)
_TAGGING = Spec(
    "customer tagging",
    required={"email": EMAIL, "tags": list_of(NAME, nonempty=True)},
    optional={"createdAt": TIMESTAMP},  # the OpenAPI spec lists it; the guide never sends it
)

SPECS: Mapping[str, Spec] = {
    "customer": Spec(
        "customer",
        required={"email": EMAIL, "createdAt": TIMESTAMP},
        optional={"firstName": TEXT, "lastName": TEXT, "subscribed": BOOLEAN, "tags": _TAGS},
    ),
    "customer/tag": _TAGGING,
    "customer/untag": _TAGGING,
    "category": Spec("category", required={"id": ID, "name": NAME}, optional={"url": TEXT}),
    "product": Spec(
        "product",
        required={"id": ID, "name": NAME},
        optional={
            "price": NUMBER,
            "categories": list_of(ID),
            "sku": TEXT,
            "imageUrl": TEXT,
            "url": TEXT,
            "options": list_of(_object(OPTION)),
        },
        rules=(_price_unless_options, _unique_option_ids),
    ),
    "order": Spec(
        "order",
        required={
            "id": ID,
            "createdAt": TIMESTAMP,
            "amount": NUMBER,
            "status": NAME,
            "products": list_of(_object(ORDER_LINE)),
        },
        optional={
            "email": EMAIL,
            "coupons": list_of(NAME),
            "billing": _object(BILLING),
            "ipAddress": TEXT,
        },
    ),
}
"""Single-record endpoint -> the spec its records (and its batch's items) must meet."""

_ENVELOPE_HINT = "single-record paths take `params`, batch paths take `batch`"
_ENVELOPE_OPTIONAL: Mapping[str, Check] = {"platform": TEXT, "pluginVersion": TEXT}
SINGLE_ENVELOPE = Spec(
    "request body",
    required={"time": TIMESTAMP, "token": NAME, "params": ANY_OBJECT},
    optional=_ENVELOPE_OPTIONAL,
    unknown_hint=_ENVELOPE_HINT,
)
BATCH_ENVELOPE = Spec(
    "request body",
    required={"time": TIMESTAMP, "token": NAME, "batch": list_of(ANY_OBJECT, nonempty=True)},
    optional=_ENVELOPE_OPTIONAL,
    unknown_hint=_ENVELOPE_HINT,
)
