"""Reflect the shop, draft a mapping, and make sure it passes `check` before anyone sees it.

A resource that the check finds fault with is written commented out with the check's words
(nothing half-working is left active); then a summary per resource: rows and one record.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from cdc_sync.core.resources import Resource
from cdc_sync.errors import MappingError, NoShopError, Problem
from cdc_sync.init.detect import draft_for
from cdc_sync.init.draft import Draft
from cdc_sync.init.facts import SchemaFacts
from cdc_sync.init.reflect import COUNT_CAP, reflect_facts
from cdc_sync.init.yamltext import Entry
from cdc_sync.mapping.loader import parse_mapping
from cdc_sync.source import ShopSource
from cdc_sync.source.connect import reading

_DERIVED = ("guest_customers", "deleted_products")
_ROUNDS = 6
_PREVIEW_CHARS = 160
_FIX = "check that CDC_SYNC_SOURCE_URL points at the shop database and the reader may SELECT"


@dataclass(frozen=True)
class Mapped:
    """What init mapped for one resource: how many rows it reads and one record's preview."""

    resource: str
    rows: int
    capped: bool
    preview: str


@dataclass(frozen=True)
class InitResult:
    platform: str
    text: str
    mapped: list[Mapped]
    todos: list[tuple[int, str]]  # line number, the TODO text


def build(engine: sa.Engine, path: Path) -> InitResult:
    """The checked mapping for the shop behind `engine` (`path`: the name messages use)."""
    with reading("reading the shop's schema", _FIX, engine):
        facts = reflect_facts(engine)
    _require_shop(facts, engine)
    draft = draft_for(facts)
    if not draft.mapped():
        raise NoShopError(_no_shop(engine, facts))
    text, source = _checked(engine, draft, path)
    return InitResult(draft.platform, text, _summary(source), todos(text))


def _require_shop(facts: SchemaFacts, engine: sa.Engine) -> None:
    if not facts.tables:
        raise NoShopError(f"the database {engine.url.database!r} has no tables; fix: point "
                          "CDC_SYNC_SOURCE_URL (or --source-url) at the shop's database")


def _no_shop(engine: sa.Engine, facts: SchemaFacts) -> str:
    shown = ", ".join(t.name for t in facts.tables[:8])
    return (f"found no shop in {engine.url.database!r} ({len(facts.tables)} tables: {shown}"
            f"{', ...' if len(facts.tables) > 8 else ''}): no customers (a table with an email), "
            "orders (a date and a total) or products; fix: point CDC_SYNC_SOURCE_URL at the shop's "
            "database, or write mappings.yaml by hand (docs/mappings.md)")


def _checked(engine: sa.Engine, draft: Draft, path: Path) -> tuple[str, ShopSource]:
    for _ in range(_ROUNDS):
        text = draft.text()
        source = ShopSource(engine, parse_mapping(text, path))
        problems = source.check()
        if not problems:
            return text, source
        if not _leave_out(draft, problems):
            break
    raise MappingError(problems, title=f"cdc-sync init drafted a mapping ({draft.platform}) "
                       "that does not fit this shop; please report it. Its problems")


def _leave_out(draft: Draft, problems: list[Problem]) -> bool:
    """Comment out every resource a problem names; False when none could be."""
    changed = False
    for problem in problems:
        found = re.search(r"\(([a-z_]+)", problem.where)
        name = found.group(1) if found else ""
        reason = f"`cdc-sync check` said: {problem.what}"
        if name in _DERIVED:
            changed |= _switch_off(draft, name, reason)
        else:
            changed |= draft.disable(name, reason)
    return changed


def _switch_off(draft: Draft, name: str, reason: str) -> bool:
    for entry in draft.entries:
        if entry.key == name and entry.value != [Entry("enabled", False)]:
            entry.value = [Entry("enabled", False)]
            entry.comment = f"{entry.comment}\nTODO: switched off, because {reason}".strip()
            return True
    return False


def _summary(source: ShopSource) -> list[Mapped]:
    return [_mapped(source, resource) for resource in source.mapped_resources()]


def _mapped(source: ShopSource, resource: Resource) -> Mapped:
    rows = source.count(resource, COUNT_CAP)
    keys = source.sample_keys(resource, 1)
    records = list(source.records(resource, keys=keys)) if keys else []
    preview = json.dumps(records[0].payload, ensure_ascii=False, default=str) if records else ""
    if len(preview) > _PREVIEW_CHARS:
        preview = preview[: _PREVIEW_CHARS - 3] + "..."
    return Mapped(resource.value, rows, rows >= COUNT_CAP, preview)


def todos(text: str) -> list[tuple[int, str]]:
    """Each `TODO:` comment in the text with its line number (what is left for a person)."""
    found: list[tuple[int, str]] = []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        at = line.find("TODO:")
        if at < 0:
            continue
        words = [line[at + 5:].strip()]
        for following in lines[number:]:
            rest = following.lstrip()
            if not rest.startswith("#   "):
                break  # a comment's continuation lines are indented (yamltext.comment_lines)
            words.append(rest.lstrip("# ").strip())
        found.append((number, " ".join(words)))
    return found
