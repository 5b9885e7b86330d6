"""How a StateRow's fields are kept in sync_state's columns: status text, tags as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cdc_sync.state.rows import StateRow, Status

STATUS_OF = {s.value: s for s in Status}
"""The Status of a status column's text."""

_NO_TAGS = "[]"
NUMBER_LOWEST, NUMBER_HIGHEST = -(2**63), 2**63 - 1  # what key_number (a BIGINT) holds


def key_number(key: str) -> int | None:
    """The key_number column of a key: the integer whose text (`str`) the key is, if a BIGINT
    holds it; None for any other key ('a@b.c', '007', '-0', '+5', ' 5', a composite key)."""
    try:
        number = int(key)
    except ValueError:
        return None
    return number if NUMBER_LOWEST <= number <= NUMBER_HIGHEST and str(number) == key else None


def tags_json(tags: tuple[str, ...]) -> str:
    return json.dumps(list(tags), ensure_ascii=False) if tags else _NO_TAGS


def tags_of(text: str) -> tuple[str, ...]:
    return () if text == _NO_TAGS else tuple(json.loads(text))


def state_row(row: Sequence[Any]) -> StateRow:
    """A StateRow from a row of statements.ROW_COLUMNS."""
    key, metrilo_id, status, synced_fp, attempt_fp, tags, forced, attempts, error, at, kept = row
    return StateRow(
        key, metrilo_id, STATUS_OF[status], synced_fp, attempt_fp, tags_of(tags), bool(forced),
        attempts, error, at, bool(kept),
    )


def lookup_row(row: Sequence[Any]) -> StateRow:
    """A StateRow from a row of statements.LOOKUP_COLUMNS (no synced_at)."""
    key, metrilo_id, status, synced_fp, attempt_fp, tags, forced, attempts, error, kept = row
    return StateRow(
        key, metrilo_id, STATUS_OF[status], synced_fp, attempt_fp, tags_of(tags), bool(forced),
        attempts, error, None, bool(kept),
    )
