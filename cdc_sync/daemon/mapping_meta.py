"""What the state DB remembers about the daemon's mapping edits, for `cdc-sync status`.

An edit of mappings.yaml that could not be applied (malformed, or it does not fit the shop)
is kept in the meta value `mapping:problems` until a good mapping is loaded, so `status`, run
from any shell, says why the daemon still runs on its last good mapping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cdc_sync.errors import Problem
from cdc_sync.state import meta_keys
from cdc_sync.state.meta_keys import MetaStore


@dataclass(frozen=True)
class RefusedEdit:
    """An edit of the mapping file the daemon refused, and why."""

    file: str
    summary: str  # "the edit was not applied", "the mapping in force no longer fits the shop"
    noticed_at: str  # ISO 8601, UTC
    problems: tuple[Problem, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "summary": self.summary,
            "noticed_at": self.noticed_at,
            "problems": [{"where": p.where, "what": p.what, "fix": p.fix} for p in self.problems],
        }


def refused_edit(path: Path, summary: str, problems: list[Problem]) -> RefusedEdit:
    """A refusal noticed now."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return RefusedEdit(str(path), summary, now, tuple(problems))


def record_refused_edit(state: MetaStore, edit: RefusedEdit | None) -> None:
    """Store the refusal, or clear it (None) once a good mapping is in force."""
    value = "" if edit is None else json.dumps(edit.as_dict(), ensure_ascii=False)
    if (state.get_meta(meta_keys.MAPPING_PROBLEMS) or "") != value:
        state.set_meta(meta_keys.MAPPING_PROBLEMS, value)


def last_refused_edit(state: MetaStore) -> RefusedEdit | None:
    """The refused edit the daemon keeps running past, or None (for `status`)."""
    stored = state.get_meta(meta_keys.MAPPING_PROBLEMS)
    if not stored:
        return None
    data = json.loads(stored)
    problems = tuple(Problem(p["where"], p["what"], p.get("fix", "")) for p in data["problems"])
    return RefusedEdit(data["file"], data["summary"], data["noticed_at"], problems)
