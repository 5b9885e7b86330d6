"""A Metrilo record checked against the contract's Resources table: the reasons it would fail.

Metrilo answers 200 and drops bad records later, silently, so cdc-sync checks every record
before sending it (and the sandbox checks again on receipt). Each endpoint has a `Spec`: its
required and optional fields, each with a check, plus whole-record rules. Unknown fields are
reasons too: they are almost always a typo in mappings.yaml.

Every record of a push is checked, and almost all are fine, so each check comes in two parts:
`fits`, a yes/no answer that builds no path and no list (the fast path), and `explain`, which
finds every reason with its path. `fits` answering True promises that `explain` finds nothing;
False only means "look closer" (it may be stricter, e.g. about subclasses of str), so the
reasons a record gets are always those of `explain`.

Pure: no I/O, no third-party imports.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cdc_sync.core.resources import Payload
from cdc_sync.errors import UnknownEndpointError

Explain = Callable[[str, Any], list[str]]
"""(path of the value, value) -> reasons, each already prefixed with the path."""

Fits = Callable[[Any], bool]
"""value -> True only if its Explain would give no reasons (the fast path; see the module doc)."""

Rule = Callable[[Mapping[str, Any]], list[str]]
"""A whole-object rule (fields that depend on each other) -> reasons."""

MIN_MS = 631_152_000_000
"""1990-01-01T00:00:00Z in ms: older dates are not plausible for shop data."""
MAX_MS = 4_102_444_800_000
"""2100-01-01T00:00:00Z in ms: later dates are a unit mistake or garbage."""
MAX_NUMBER = 1e12

_PRINTABLE_BITS = 1000  # about 300 digits: longer numbers are shown by their size only
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # tab, LF and CR are allowed
_EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_COUNTRY_SHAPE = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True, slots=True)
class Check:
    """How one value is checked: the reasons with their path, and the fast yes/no for them."""

    explain: Explain
    fits: Fits


@dataclass(frozen=True, slots=True)
class Spec:
    """The shape of one kind of JSON object: its fields and the rules between them.

    `fits` is built from the fields' own `fits` once, when the spec is made.
    """

    name: str
    required: Mapping[str, Check]
    optional: Mapping[str, Check] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    unknown_hint: str = "a typo in the mapping?"
    fits: Fits = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fits", _object_fits(self))


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


def _object_fits(spec: Spec) -> Fits:
    required = frozenset(spec.required)
    fits_by_name = {name: check.fits for name, check in {**spec.optional, **spec.required}.items()}
    rules = spec.rules

    def fits(value: Any) -> bool:
        if value.__class__ is not dict or not value.keys() >= required:
            return False
        for name, given in value.items():
            fits_one = fits_by_name.get(name)  # None: an unknown field
            if fits_one is None or given is None or not fits_one(given):
                return False
        return not rules or not any(rule(value) for rule in rules)

    return fits


def describe(value: Any) -> str:
    """A short, safe rendering of a bad value for a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value[:40]!r}" + ("..." if len(value) > 40 else "")
    if isinstance(value, int | float):
        return number_text(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def number_text(value: float) -> str:
    """A number for a message; ints too long to print (over 4300 digits) are described instead."""
    if isinstance(value, int) and value.bit_length() > _PRINTABLE_BITS:
        return f"a number of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    return repr(value)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _unknown_field(spec: Spec, path: str) -> str:
    known = ", ".join([*spec.required, *spec.optional])
    return (
        f"{path}: is not a {spec.name} field Metrilo knows ({spec.unknown_hint}); "
        f"known fields: {known}"
    )


# --- leaf checks: `explain` returns reasons prefixed with the value's path; `fits` the fast yes --


def _string_problem(value: Any, *, nonempty: bool) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, got {describe(value)}"
    if nonempty and not value.strip():
        return "must not be empty"
    found = _CONTROL.search(value)
    if found:
        return (
            f"contains the control character U+{ord(found.group()):04X} at position "
            f"{found.start()}; strip it in the mapping"
        )
    return None


def _clean_string(value: Any) -> bool:
    # Control characters are not printable, so a printable string (most are) needs no regex.
    return value.__class__ is str and (value.isprintable() or _CONTROL.search(value) is None)


def _text(path: str, value: Any) -> list[str]:
    problem = _string_problem(value, nonempty=False)
    return [f"{path}: {problem}"] if problem else []


def _name(path: str, value: Any) -> list[str]:
    problem = _string_problem(value, nonempty=True)
    return [f"{path}: {problem}"] if problem else []


def _name_fits(value: Any) -> bool:
    return _clean_string(value) and value.strip() != ""


def _id(path: str, value: Any) -> list[str]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [f"{path}: must be a string, got the number {number_text(value)} "
                "(Metrilo ids are strings)"]
    return _name(path, value)


def _email(path: str, value: Any) -> list[str]:
    problem = _string_problem(value, nonempty=True)
    if problem:
        return [f"{path}: {problem}"]
    if len(value) > 254 or not _EMAIL_SHAPE.fullmatch(value):
        return [f"{path}: does not look like an email address, got {describe(value)}"]
    return []


def _email_fits(value: Any) -> bool:
    # _EMAIL_SHAPE without the regex: every whitespace character but the space is unprintable,
    # so a printable string without a space has none. Then: one "@", something before it, and
    # a dot after it with something on both sides (the last part has no dot by rpartition).
    if value.__class__ is not str or len(value) > 254 or not value.isprintable() or " " in value:
        return False
    local, _, domain = value.partition("@")
    host, _, top = domain.rpartition(".")
    return local != "" and host != "" and top != "" and "@" not in domain


def _country_code(path: str, value: Any) -> list[str]:
    if isinstance(value, str) and _COUNTRY_SHAPE.fullmatch(value):
        return []
    return [f"{path}: must be an ISO 3166-1 alpha-2 code in capitals (e.g. 'DE'), "
            f"got {describe(value)}"]


def _country_code_fits(value: Any) -> bool:
    return value.__class__ is str and _COUNTRY_SHAPE.fullmatch(value) is not None


def _timestamp(path: str, value: Any) -> list[str]:
    if not isinstance(value, int) or isinstance(value, bool):
        return [f"{path}: must be an integer number of milliseconds since 1970, "
                f"got {describe(value)}"]
    if MIN_MS <= value < MAX_MS:
        return []
    shown = number_text(value)
    if value < 0:
        return [f"{path}: is before 1970 (got {shown}); check the source column"]
    if MIN_MS <= value * 1000 < MAX_MS:
        return [f"{path}: must be an integer number of milliseconds, got {shown} (seconds?)"]
    if MIN_MS <= value // 1000 < MAX_MS:
        return [f"{path}: must be an integer number of milliseconds, got {shown} "
                "(microseconds?)"]
    if value < MIN_MS:
        return [f"{path}: is before 1990-01-01 (got {shown} ms), not a plausible shop date"]
    return [f"{path}: is after 2100-01-01 (got {shown} ms), far in the future"]


def _timestamp_fits(value: Any) -> bool:
    return value.__class__ is int and MIN_MS <= value < MAX_MS  # bool's class is not int


def _number_problem(value: Any) -> str | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return f"must be a number, got {describe(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if abs(value) > MAX_NUMBER:
        return (f"is absurdly large ({number_text(value)} > 1e12); check the source column and "
                "its unit")
    return None


def _number(path: str, value: Any) -> list[str]:
    problem = _number_problem(value)
    return [f"{path}: {problem}"] if problem else []


def _number_fits(value: Any) -> bool:
    # NaN and the infinities fail the comparison, so they take the explaining path.
    kind = value.__class__
    return (kind is float or kind is int) and -MAX_NUMBER <= value <= MAX_NUMBER


def _positive_number(path: str, value: Any) -> list[str]:
    problem = _number_problem(value)
    if problem is None and value <= 0:
        problem = f"must be greater than 0, got {number_text(value)}"
    return [f"{path}: {problem}"] if problem else []


def _positive_number_fits(value: Any) -> bool:
    return _number_fits(value) and value > 0


def _boolean(path: str, value: Any) -> list[str]:
    if isinstance(value, bool):
        return []
    return [f"{path}: must be true or false, got {describe(value)}"]


def _boolean_fits(value: Any) -> bool:
    return value is True or value is False


_TEXT = Check(_text, _clean_string)
_NAME = Check(_name, _name_fits)
_ID = Check(_id, _name_fits)  # a number is never a clean string, so it takes `explain`
_EMAIL = Check(_email, _email_fits)
_COUNTRY_CODE = Check(_country_code, _country_code_fits)
_TIMESTAMP = Check(_timestamp, _timestamp_fits)
_NUMBER = Check(_number, _number_fits)
_POSITIVE_NUMBER = Check(_positive_number, _positive_number_fits)
_BOOLEAN = Check(_boolean, _boolean_fits)


# --- composite checks -------------------------------------------------------------------------


def _list_of(item: Check, *, nonempty: bool = False) -> Check:
    def explain(path: str, value: Any) -> list[str]:
        if not isinstance(value, list):
            return [f"{path}: must be a list, got {describe(value)}"]
        if nonempty and not value:
            return [f"{path}: must not be empty"]
        reasons: list[str] = []
        for index, element in enumerate(value):
            reasons.extend(item.explain(f"{path}[{index}]", element))
        return reasons

    item_fits = item.fits

    def fits(value: Any) -> bool:
        return value.__class__ is list and (bool(value) or not nonempty) and all(
            map(item_fits, value)
        )

    return Check(explain, fits)


def _object(spec: Spec) -> Check:
    def explain(path: str, value: Any) -> list[str]:
        return check_object(spec, path, value)

    return Check(explain, spec.fits)


def _any_object(path: str, value: Any) -> list[str]:
    return [] if isinstance(value, dict) else [f"{path}: must be an object, got {describe(value)}"]


def _any_object_fits(value: Any) -> bool:
    return value.__class__ is dict


_ANY_OBJECT = Check(_any_object, _any_object_fits)


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

_TAGS = _list_of(_NAME)

OPTION = Spec(
    "product option",
    required={"id": _ID, "name": _NAME, "price": _NUMBER},
    optional={"sku": _TEXT, "imageUrl": _TEXT},
)
ORDER_LINE = Spec("order line", required={"productId": _ID, "quantity": _POSITIVE_NUMBER})
BILLING = Spec(
    "billing",
    required={},
    optional={
        "address": _TEXT,
        "city": _TEXT,
        "countryCode": _COUNTRY_CODE,
        "phone": _TEXT,
        "postcode": _TEXT,
        "paymentMethod": _TEXT,
    },
)
_TAGGING = Spec(
    "customer tagging",
    required={"email": _EMAIL, "tags": _list_of(_NAME, nonempty=True)},
    optional={"createdAt": _TIMESTAMP},  # the OpenAPI spec lists it; the guide never sends it
)

SPECS: Mapping[str, Spec] = {
    "customer": Spec(
        "customer",
        required={"email": _EMAIL, "createdAt": _TIMESTAMP},
        optional={"firstName": _TEXT, "lastName": _TEXT, "subscribed": _BOOLEAN, "tags": _TAGS},
    ),
    "customer/tag": _TAGGING,
    "customer/untag": _TAGGING,
    "category": Spec("category", required={"id": _ID, "name": _NAME}, optional={"url": _TEXT}),
    "product": Spec(
        "product",
        required={"id": _ID, "name": _NAME},
        optional={
            "price": _NUMBER,
            "categories": _list_of(_ID),
            "sku": _TEXT,
            "imageUrl": _TEXT,
            "url": _TEXT,
            "options": _list_of(_object(OPTION)),
        },
        rules=(_price_unless_options, _unique_option_ids),
    ),
    "order": Spec(
        "order",
        required={
            "id": _ID,
            "createdAt": _TIMESTAMP,
            "amount": _NUMBER,
            "status": _NAME,
            "products": _list_of(_object(ORDER_LINE)),
        },
        optional={
            "email": _EMAIL,
            "coupons": _list_of(_NAME),
            "billing": _object(BILLING),
            "ipAddress": _TEXT,
        },
    ),
}
"""Single-record endpoint -> the spec its records (and its batch's items) must meet."""

_ENVELOPE_HINT = "single-record paths take `params`, batch paths take `batch`"
_ENVELOPE_OPTIONAL: Mapping[str, Check] = {"platform": _TEXT, "pluginVersion": _TEXT}
SINGLE_ENVELOPE = Spec(
    "request body",
    required={"time": _TIMESTAMP, "token": _NAME, "params": _ANY_OBJECT},
    optional=_ENVELOPE_OPTIONAL,
    unknown_hint=_ENVELOPE_HINT,
)
BATCH_ENVELOPE = Spec(
    "request body",
    required={"time": _TIMESTAMP, "token": _NAME, "batch": _list_of(_ANY_OBJECT, nonempty=True)},
    optional=_ENVELOPE_OPTIONAL,
    unknown_hint=_ENVELOPE_HINT,
)
