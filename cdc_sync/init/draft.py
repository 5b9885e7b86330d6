"""A mapping being drafted: the platform it was made for and its top-level entries (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cdc_sync.init.facts import SchemaFacts
from cdc_sync.init.yamltext import Entry, render

RESOURCES = ("customers", "categories", "products", "orders")


@dataclass
class Draft:
    platform: str  # what init recognised, for the summary
    entries: list[Entry] = field(default_factory=list)

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)

    def text(self) -> str:
        return render(self.entries)

    def disable(self, name: str, reason: str) -> bool:
        """Write resource `name` commented out with `reason`; False when it is not mapped."""
        for entry in self.entries:
            if entry.key == name and not entry.commented_out:
                entry.commented_out = True
                entry.comment = f"{entry.comment}\nTODO: left out, because {reason}".strip()
                return True
        return False

    def mapped(self) -> list[str]:
        """Resources written (not commented out), in file order."""
        return [e.key for e in self.entries if e.key in RESOURCES and not e.commented_out]


def header(facts: SchemaFacts, platform: str, *, naive_utc: bool = False) -> list[Entry]:
    """The file's first entries: where it came from, how to read it, version and time zone."""
    intro = (f"Written by `cdc-sync init` for a {facts.dialect} shop: {platform}.\n"
             "Every choice is explained in a comment; a TODO comment marks each guess to confirm.\n"
             "docs/mappings.md explains every key. Next: cdc-sync check, then "
             "cdc-sync preview orders --limit 5, then cdc-sync sync.")
    naive = facts.dialect != "postgresql"
    zone = ("the preset reads only columns the platform stores in UTC" if naive_utc else
            "TODO: the zone the shop's naive DATETIME columns are in (UTC assumed)" if naive
            else "TODO: the zone of naive timestamp columns (UTC assumed); timestamptz columns "
            "carry their own")
    return [Entry("version", 1, intro), Entry("source_timezone", "UTC", zone)]


def disabled(name: str, reason: str, *body: Entry) -> Entry:
    """A resource written commented out: why nothing fits, and what a person could fill in."""
    return Entry(name, [*body, Entry("fields", [Entry("TODO", "map the fields")])],
                 f"TODO: not mapped: {reason}", commented_out=True)
