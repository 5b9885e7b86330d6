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
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from cdc_sync.mapping.model import Coercion, Epoch, FieldSpec

Coerce = Callable[[Any], Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_MS_THRESHOLD = 100_000_000_000  # 1e11: as seconds that is the year 5138, as ms March 1973
_NUMERIC_TEXT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_TRUE = frozenset({"1", "true", "t", "y", "yes"})
_FALSE = frozenset({"0", "false", "f", "n", "no"})
_BOOLEAN_HELP = "(accepted: 1/0, true/false, Y/N, t/f, yes/no)"


class CoercionError(ValueError):
    """A value that cannot become the field's type; the message is the reason, for a user."""


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
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


# --- text ---


def to_text(value: Any) -> str:
    """Text of a value: numbers without '.0' artefacts, bytes as UTF-8, bools as true/false."""
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
    if value == int(value):
        return str(int(value))
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return repr(value)


def _is_finite(value: float | Decimal) -> bool:
    return value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CoercionError(f"value {shown(raw)} is not valid UTF-8 text") from None


def _email(value: Any) -> str:
    return to_text(value).strip().lower()


def _json(value: Any) -> Any:
    return value


# --- numbers ---


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

    return _guarded(timestamp)


def _datetime_ms(value: datetime, zone: tzinfo) -> int:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=zone)
    return (aware - _EPOCH) // _MILLISECOND


def _epoch_ms(value: int | float | Decimal, epoch: Epoch | None) -> int:
    if not isinstance(value, int) and not _is_finite(value):
        raise CoercionError(f"value {shown(value)} is not a finite number")
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


_SIMPLE: dict[Coercion, Coerce] = {
    Coercion.STRING: to_text,
    Coercion.NUMBER: _guarded(_number),
    Coercion.INTEGER: _guarded(_integer),
    Coercion.BOOLEAN: _boolean,
    Coercion.EMAIL: _email,
    Coercion.JSON: _json,
}
