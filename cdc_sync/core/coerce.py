"""Turn raw driver values into Metrilo values, one coercion each (pure, on the hot path).

Drivers hand back int, Decimal, float, str, bytes, bool, date, datetime (naive or aware) or
None; SQLite gives datetimes as ISO text and booleans as 0/1, MariaDB booleans as tinyint and
BIT(1) as bytes. `coercer` builds one function per field once, so composing a row does no spec
inspection; a value that cannot be coerced raises CoercionError with a reason fit for a user.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from cdc_sync.errors import CoercionError
from cdc_sync.mapping.model import Coercion, Epoch, FieldSpec

Coerce = Callable[[Any], Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MS_THRESHOLD = 100_000_000_000  # 1e11: as seconds that is the year 5138, as ms March 1973
# Beyond any plausible value; above 4300 digits Python even refuses to print an int, which would
# crash fingerprinting and messages instead of rejecting the record.
_MAX_EXPONENT = 300
_MAX_EPOCH = 10**17  # ms: the year 3 million; larger epochs are garbage, not dates
_NUMERIC_TEXT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_TRUE = frozenset({"1", "true", "t", "y", "yes"})
_FALSE = frozenset({"0", "false", "f", "n", "no"})
_BOOLEAN_HELP = "(accepted: 1/0, true/false, Y/N, t/f, yes/no)"


def coerce(value: Any, coercion: Coercion, spec: FieldSpec, tz: tzinfo) -> Any:
    """`value` (not None) as `coercion` says; naive times are in spec.timezone, else `tz`."""
    return coercer(coercion, spec, tz)(value)


def coercer(coercion: Coercion, spec: FieldSpec, tz: tzinfo) -> Coerce:
    """The coercion as one function of the value, with the spec's options bound."""
    if coercion is Coercion.TIMESTAMP:
        zone = ZoneInfo(spec.timezone) if spec.timezone else tz
        return _timestamp_coercer(zone, spec.epoch)
    return _SIMPLE[coercion]


def shown(value: Any) -> str:
    """A value as a reason quotes it: repr, shortened."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return "a number too long to print"
    return text if len(text) <= 60 else f"{text[:57]}..."


# --- text ---


def to_text(value: Any) -> str:
    """Text of a value: numbers without '.0' artefacts, bytes as UTF-8, bools as true/false."""
    kind = value.__class__
    if kind is str:  # the common cases first, by exact class (a bool is not an int here)
        return value  # type: ignore[no-any-return]
    if kind is int:
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        return _number_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _decode(bytes(value))
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _number_text(value: float | Decimal) -> str:
    if not _is_finite(value):
        return str(value)
    if isinstance(value, Decimal):
        # Formatted, never through int(): Decimal('1e5000') has too many digits for int -> str.
        return "0" if value.is_zero() else format(value.normalize(), "f")
    if value == int(value):
        return str(int(value))
    return repr(value)


def _is_finite(value: float | Decimal) -> bool:
    return value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CoercionError(f"value {shown(raw)} is not valid UTF-8 text") from None


def _email(value: Any) -> str:
    text = value if value.__class__ is str else to_text(value)
    return text.strip().lower()


def _json(value: Any) -> Any:
    problem = _json_problem(value)
    if problem is not None:
        raise CoercionError(
            f"value {shown(value)} is not a JSON value ({problem}); map a column holding JSON, "
            "or give the field another type:"
        )
    return value


def _json_problem(value: Any) -> str | None:
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value!r} is not a finite number"
    if isinstance(value, list):
        return next((p for p in map(_json_problem, value) if p is not None), None)
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            return "object keys must be text"
        return next((p for p in map(_json_problem, value.values()) if p is not None), None)
    return f"{type(value).__name__} is not one of text, number, boolean, list, object or null"


# --- numbers ---


def _fast_number(value: Any) -> int | float:
    # ints and Decimals are what drivers return for numeric columns: no detour through checks.
    kind = value.__class__
    if kind is int:
        return value  # type: ignore[no-any-return]
    if kind is Decimal and value.is_finite() and value.adjusted() <= _MAX_EXPONENT:
        # float(Decimal) is float(str(Decimal)): the shortest float printing as the value
        return int(value) if value == value.to_integral_value() else float(value)
    number: int | float = _guarded_number(value)  # every other case, with its checks
    return number


def _number(value: Any) -> int | float:
    if isinstance(value, int):  # bool included: a tinyint flag summed as a number
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CoercionError(f"value {shown(value)} is not a finite number")
        return int(value) if value.is_integer() else value
    decimal = _as_decimal(value, "a number")
    if decimal == decimal.to_integral_value():
        return int(decimal)
    # float(str(d)) is the shortest float that prints as d: Decimal('10.42') -> 10.42.
    return float(str(decimal))


def _integer(value: Any) -> int:
    number = _number(value)
    if isinstance(number, float):
        raise CoercionError(f"value {shown(value)} is not a whole number")
    return number


def _as_decimal(value: Any, kind: str) -> Decimal:
    if isinstance(value, Decimal):
        decimal = value
    elif isinstance(value, str | bytes):
        text = (value if isinstance(value, str) else _decode(value)).strip()
        if not _NUMERIC_TEXT.match(text):
            raise CoercionError(f"value {shown(value)} is not {kind}")
        decimal = Decimal(text)
    else:
        raise CoercionError(f"value {shown(value)} is not {kind}")
    if not decimal.is_finite():
        raise CoercionError(f"value {shown(value)} is not a finite number")
    if decimal.adjusted() > _MAX_EXPONENT:
        raise CoercionError(f"value {shown(value)} is out of range")
    return decimal


# --- booleans ---


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, bytes) and len(value) == 1 and value in (b"\x00", b"\x01"):
        return value == b"\x01"  # MySQL BIT(1)
    if isinstance(value, int | float | Decimal) and value in (0, 1):
        return value == 1
    if isinstance(value, str | bytes):
        text = to_text(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise CoercionError(f"value {shown(value)} is not a boolean {_BOOLEAN_HELP}")


# --- timestamps ---


def _timestamp_coercer(zone: tzinfo, epoch: Epoch | None) -> Coerce:
    guarded = _guarded(_any_timestamp(zone, epoch))

    def timestamp(value: Any) -> int:
        if value.__class__ is datetime:  # what drivers return: straight to milliseconds
            try:
                return _datetime_ms(value, zone)
            except OverflowError:
                pass  # the guarded path says why
        return guarded(value)  # type: ignore[no-any-return]

    return timestamp


def _any_timestamp(zone: tzinfo, epoch: Epoch | None) -> Coerce:
    def timestamp(value: Any) -> int:
        if isinstance(value, datetime):
            return _datetime_ms(value, zone)
        if isinstance(value, date):
            return _datetime_ms(datetime(value.year, value.month, value.day), zone)
        if isinstance(value, bool):
            raise CoercionError(f"value {shown(value)} is not a timestamp")
        if isinstance(value, int | float | Decimal):
            return _epoch_ms(value, epoch)
        if isinstance(value, str | bytes):
            return _text_ms(to_text(value).strip(), zone, epoch)
        raise CoercionError(f"value {shown(value)} is not a timestamp")

    return timestamp


def _datetime_ms(value: datetime, zone: tzinfo) -> int:
    # (value in `zone`, or its own) - the epoch, floored to ms: what
    # `(value.replace(tzinfo=zone) - _EPOCH) // _MILLISECOND` gives, without an aware datetime
    # or a timedelta division (3 us against 0.3 a value: one per order and customer).
    offset = zone.utcoffset(value) if value.tzinfo is None else None  # a zone's: never None
    since = value - _EPOCH if offset is None else value - _NAIVE_EPOCH - offset
    return (since.days * 86_400 + since.seconds) * 1000 + since.microseconds // 1000


def _epoch_ms(value: int | float | Decimal, epoch: Epoch | None) -> int:
    if not isinstance(value, int) and not _is_finite(value):
        raise CoercionError(f"value {shown(value)} is not a finite number")
    if not -_MAX_EPOCH < value < _MAX_EPOCH:
        raise CoercionError(f"value {shown(value)} is out of range for an epoch timestamp")
    in_ms = epoch is Epoch.MILLISECONDS or (epoch is None and abs(float(value)) >= _MS_THRESHOLD)
    if in_ms:
        return round(value)
    if isinstance(value, int):
        return value * 1000
    return round(Decimal(str(value)) * 1000)


def _text_ms(text: str, zone: tzinfo, epoch: Epoch | None) -> int:
    if _NUMERIC_TEXT.match(text):
        return _epoch_ms(Decimal(text), epoch)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise CoercionError(
            f"value {shown(text)} is not a timestamp "
            "(expected a date/time, ISO-8601 text or epoch number)"
        ) from None
    return _datetime_ms(parsed, zone)


def _guarded(function: Coerce) -> Coerce:
    # Absurd inputs (1e999999, year 9999 east of UTC) overflow inside the arithmetic: a bad
    # value like any other, not a crash.
    def guarded(value: Any) -> Any:
        try:
            return function(value)
        except (InvalidOperation, OverflowError) as error:
            raise CoercionError(f"value {shown(value)} is out of range") from error

    return guarded


_guarded_number = _guarded(_number)

_SIMPLE: dict[Coercion, Coerce] = {
    Coercion.STRING: to_text,
    Coercion.NUMBER: _fast_number,
    Coercion.INTEGER: _guarded(_integer),
    Coercion.BOOLEAN: _boolean,
    Coercion.EMAIL: _email,
    Coercion.JSON: _json,
}
