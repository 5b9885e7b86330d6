"""The checks of single values in a Metrilo record (core/validate.py builds the specs from them).

Each `Check` comes in two parts: `explain`, which finds every reason with the value's path, and
`fits`, a yes/no answer that builds no path and no list (the fast path of a push, where almost
every record is fine). `fits` answering True promises that `explain` finds nothing.

Pure: no I/O, no third-party imports.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Explain = Callable[[str, Any], list[str]]
"""(path of the value, value) -> reasons, each already prefixed with the path."""

Fits = Callable[[Any], bool]
"""value -> True only if its Explain would give no reasons (the fast path; see the module doc)."""

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
    """How one value is checked: the reasons with their path, and the fast yes/no for them.

    What generated code (core/fitscode.py) may write in place of a call to `fits`: `inline`,
    the same test as a Python expression of the value `{v}` over the names of `INLINE_NAMES`;
    or, for a list, its `item` check (and `nonempty`); or, for an object, its `spec`.
    """

    explain: Explain
    fits: Fits
    inline: str | None = None
    item: Check | None = None
    nonempty: bool = False
    spec: Any = None  # core/validate.Spec (which is built from checks)


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


INLINE_NAMES: dict[str, Any] = {
    "CONTROL_SEARCH": _CONTROL.search, "COUNTRY_MATCH": _COUNTRY_SHAPE.fullmatch,
    "MIN_MS": MIN_MS, "MAX_MS": MAX_MS, "MAX_NUMBER": MAX_NUMBER,
}
"""The names the `inline` expressions use."""

_CLEAN = "{v}.__class__ is str and ({v}.isprintable() or CONTROL_SEARCH({v}) is None)"
_NUMERIC = ("({v}.__class__ is float or {v}.__class__ is int) and "
            "-MAX_NUMBER <= {v} <= MAX_NUMBER")

TEXT = Check(_text, _clean_string, _CLEAN)
NAME = Check(_name, _name_fits, f"{_CLEAN} and {{v}}.strip() != ''")
ID = Check(_id, _name_fits, NAME.inline)  # a number is never a clean string: `explain` says
EMAIL = Check(_email, _email_fits)
COUNTRY_CODE = Check(_country_code, _country_code_fits,
                     "{v}.__class__ is str and COUNTRY_MATCH({v}) is not None")
TIMESTAMP = Check(_timestamp, _timestamp_fits,
                  "{v}.__class__ is int and MIN_MS <= {v} < MAX_MS")  # a bool's class is bool
NUMBER = Check(_number, _number_fits, _NUMERIC)
POSITIVE_NUMBER = Check(_positive_number, _positive_number_fits, f"{_NUMERIC} and {{v}} > 0")
BOOLEAN = Check(_boolean, _boolean_fits, "{v} is True or {v} is False")


# --- composite checks -------------------------------------------------------------------------


def list_of(item: Check, *, nonempty: bool = False) -> Check:
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

    return Check(explain, fits, item=item, nonempty=nonempty)


def _any_object(path: str, value: Any) -> list[str]:
    return [] if isinstance(value, dict) else [f"{path}: must be an object, got {describe(value)}"]


def _any_object_fits(value: Any) -> bool:
    return value.__class__ is dict


ANY_OBJECT = Check(_any_object, _any_object_fits, "{v}.__class__ is dict")
