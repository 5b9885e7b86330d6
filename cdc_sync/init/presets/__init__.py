"""Presets: mappings for the big shop platforms, written against their real table definitions.

Each preset recognises its platform (and table prefix) from the table names, and returns a
draft whose blocks are hand-written YAML with the prefix filled in.
"""

from __future__ import annotations

import textwrap

from cdc_sync.init.facts import SchemaFacts


def prefix_of(facts: SchemaFacts, marker: str, companions: tuple[str, ...]) -> str | None:
    """The table prefix of a platform: the part before `marker` in a table name, when the
    companion tables exist under the same prefix (`wp_` in wp_woocommerce_order_items)."""
    names = facts.names()
    for name in sorted(names):
        if name.endswith(marker):
            prefix = name[: -len(marker)]
            if all(f"{prefix}{companion}" in names for companion in companions):
                return prefix
    return None


def block(text: str, prefix: str) -> str:
    """A preset's YAML block with `{p}` replaced by the table prefix."""
    return textwrap.dedent(text).strip("\n").replace("{p}", prefix)
