"""Read YAML text into plain data plus the line of every key, finding duplicate keys (pure).

PyYAML silently keeps the last of two equal keys, so a second `orders:` block would quietly
replace the first; this reader reports it instead. It also reads YAML the 1.2 way for
booleans: only true/false (any case) are booleans, so `on:` (a join's key), `yes`, `no`,
`off` stay text, as editors using the JSON Schema read them too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

PathPart = str | int
YamlPath = tuple[PathPart, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_YAML12_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class _MappingLoader(yaml.SafeLoader):
    """SafeLoader whose booleans are YAML 1.2's (true/false only)."""


_MappingLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_MappingLoader.add_implicit_resolver(_BOOL_TAG, _YAML12_BOOL, list("tTfF"))


@dataclass(frozen=True)
class Locations:
    """The 1-based line of each YAML path (mapping keys as text, sequence items as int)."""

    lines: dict[tuple[str, ...], int] = field(default_factory=dict)

    def line(self, path: YamlPath) -> int:
        """The line of `path`, else of its nearest ancestor that has one (1 for the top)."""
        key = tuple(str(part) for part in path)
        while key:
            found = self.lines.get(key)
            if found is not None:
                return found
            key = key[:-1]
        return 1


@dataclass(frozen=True)
class DuplicateKey:
    """A key given twice in one YAML mapping."""

    path: YamlPath
    line: int
    first_line: int


@dataclass(frozen=True)
class YamlDocument:
    """What the YAML text holds, where each key is, and which keys were repeated."""

    data: Any
    locations: Locations
    duplicates: tuple[DuplicateKey, ...]


def read_yaml(text: str) -> YamlDocument:
    """Parse one YAML document; raises yaml.YAMLError (with a mark) when it is malformed."""
    loader = _MappingLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(None, Locations({}), ())
        lines: dict[tuple[str, ...], int] = {}
        duplicates = tuple(_walk(loader, node, (), lines, set()))
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    return YamlDocument(data, Locations(lines), duplicates)


def format_path(path: YamlPath) -> str:
    """`orders.joins[0].on` for ('orders', 'joins', 0, 'on')."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def key_text(key: Any) -> str:
    """A mapping key as text, the way the models compare map keys (true/false for bools)."""
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _walk(
    loader: yaml.SafeLoader,
    node: Node,
    path: YamlPath,
    lines: dict[tuple[str, ...], int],
    active: set[int],
) -> Iterator[DuplicateKey]:
    # `active` holds the nodes on the current branch: an alias may point back at its own
    # ancestor (a recursive document), which must not loop forever.
    if id(node) in active:
        return
    active.add(id(node))
    if isinstance(node, MappingNode):
        yield from _walk_mapping(loader, node, path, lines, active)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault(_text_path((*path, index)), item.start_mark.line + 1)
            yield from _walk(loader, item, (*path, index), lines, active)
    active.discard(id(node))


def _walk_mapping(
    loader: yaml.SafeLoader,
    node: MappingNode,
    path: YamlPath,
    lines: dict[tuple[str, ...], int],
    active: set[int],
) -> Iterator[DuplicateKey]:
    seen: dict[str, int] = {}
    merged: list[Node] = []
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            merged.append(value_node)
            continue
        if not isinstance(key_node, ScalarNode):
            continue  # a complex key: the models reject it with its own message
        key = key_text(loader.construct_object(key_node))
        line = key_node.start_mark.line + 1
        if key in seen:
            yield DuplicateKey((*path, key), line, seen[key])
        else:
            seen[key] = line
        lines[_text_path((*path, key))] = line
        yield from _walk(loader, value_node, (*path, key), lines, active)
    # Keys merged in with `<<: *anchor` point at the anchor's lines unless given here.
    for value_node in merged:
        for source in value_node.value if isinstance(value_node, SequenceNode) else [value_node]:
            inherited: dict[tuple[str, ...], int] = {}
            # Duplicates inside the anchor were reported where the anchor is defined.
            list(_walk(loader, source, path, inherited, active))
            for inherited_path, line in inherited.items():
                lines.setdefault(inherited_path, line)


def _text_path(path: YamlPath) -> tuple[str, ...]:
    return tuple(str(part) for part in path)
