"""High-water marks of incremental reads, stored as text in the state DB's meta table (pure)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any


def encode_high_water(value: Any) -> str:
    """Text form of a cursor column's MAX(); naive datetimes stay naive (source-local)."""
    if isinstance(value, datetime):
        return json.dumps({"type": "datetime", "value": value.isoformat()})
    if isinstance(value, date):
        return json.dumps({"type": "date", "value": value.isoformat()})
    if isinstance(value, bool):
        raise TypeError("a boolean column cannot be a cursor")
    if isinstance(value, int | float | Decimal):
        return json.dumps({"type": "number", "value": str(value)})
    return json.dumps({"type": "text", "value": str(value)})


def decode_high_water(text: str, *, overlap_seconds: int) -> Any:
    """The value to read from (`cursor >= value`): the mark, moved back by the overlap.

    The overlap re-reads rows written in the same instant as the mark and rows whose
    timestamp came from a clock slightly behind; re-reading is cheap, unchanged rows are
    skipped by their fingerprint. Numbers and text have no time unit, so they get no overlap.
    """
    data = json.loads(text)
    kind, raw = data["type"], data["value"]
    if kind == "datetime":
        return datetime.fromisoformat(raw) - timedelta(seconds=overlap_seconds)
    if kind == "date":
        return date.fromisoformat(raw) - timedelta(days=1 if overlap_seconds else 0)
    if kind == "number":
        number = Decimal(raw)
        return int(number) if number == number.to_integral_value() else number
    return raw
