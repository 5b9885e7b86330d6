"""YAML text with comments, built from entries (PyYAML drops comments, and init is all comments).

Values are rendered by PyYAML (so quoting is always right); this module only lays out keys,
indentation, comment lines and blocks written commented out.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from typing import Any

import yaml

_WIDTH = 96
# Keys written bare; YAML 1.1 would read `on` as a boolean, but the mapping loader reads 1.2.
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class Literal:
    """Multi-line text written as a `|` block (SQL queries)."""

    text: str


@dataclass(frozen=True)
class Flow:
    """A small map or list written on one line: `{Y: true, N: false}`."""

    value: Any


@dataclass(frozen=True)
class Raw:
    """A block written as given (a preset's hand-written YAML, comments included)."""

    text: str


@dataclass
class Entry:
    """`key: value`, with comment lines above it; `commented_out` writes the entry as comments."""

    key: str
    value: Any  # a scalar, Literal, Flow, list[Entry] (a block) or list[list[Entry]] (a list)
    comment: str = ""
    commented_out: bool = False


Block = list[Entry]


def render(block: Block) -> str:
    """The whole file: top-level entries separated by blank lines."""
    parts = ["\n".join(_entry(entry, 0)) for entry in block]
    return "\n\n".join(parts) + "\n"


def comment_lines(text: str, indent: int = 0) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for paragraph in text.splitlines():
        # Continuation lines are indented, so a reader (and `init`'s TODO list) sees where
        # one comment ends.
        wrapped = textwrap.wrap(paragraph, _WIDTH - indent - 2, subsequent_indent="  ") or [""]
        lines += [f"{pad}# {line}".rstrip() for line in wrapped]
    return lines


def _entry(entry: Entry, indent: int) -> list[str]:
    pad = " " * indent
    lines = comment_lines(entry.comment, indent) if entry.comment else []
    body = _value_lines(entry, indent)
    if entry.commented_out:
        body = [f"{pad}# {line[indent:]}" for line in body]
    return lines + body


def _value_lines(entry: Entry, indent: int) -> list[str]:
    pad = " " * indent
    key = entry.key if _PLAIN_KEY.match(entry.key) else scalar(entry.key)
    value = entry.value
    if isinstance(value, Raw):
        inner = " " * (indent + 2)
        return [f"{pad}{key}:", *(f"{inner}{line}".rstrip() for line in value.text.splitlines())]
    if isinstance(value, Literal):
        inner = " " * (indent + 2)
        return [f"{pad}{key}: |", *(f"{inner}{line}".rstrip() for line in value.text.splitlines())]
    if isinstance(value, list) and value and isinstance(value[0], list):
        lines = [f"{pad}{key}:"]
        for item in value:
            item_lines = [line for sub in item for line in _entry(sub, indent + 4)]
            item_lines[0] = f"{pad}  - {item_lines[0][indent + 4:]}"
            lines += item_lines
        return lines
    if isinstance(value, list):
        return [f"{pad}{key}:", *(line for sub in value for line in _entry(sub, indent + 2))]
    shown = flow(value.value) if isinstance(value, Flow) else scalar(value)
    return [f"{pad}{key}: {shown}"]


def scalar(value: Any) -> str:
    """One scalar as YAML (quoted when plain text would read as something else)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def flow(value: Any) -> str:
    return scalar(value)

