"""Glue between the shop source and compose: merged source rows in, SourceRecords out."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from cdc_sync.core.compose import Composer
from cdc_sync.core.resources import Resource, SourceRecord
from cdc_sync.mapping.model import ChildSpec, FieldSpec

if TYPE_CHECKING:  # only its type: the rows come from source/, which does the I/O
    from cdc_sync.source.stream import RowShape, SourceRow


Keep = Callable[["SourceRow", SourceRecord], str]
"""What state keeps of a record composed from a row (`SourceRecord.kept`)."""


class RowComposer:
    """Composes one source row into its Metrilo record (a composer is built once per shape
    of the rows: one per stream)."""

    def __init__(self, resource: Resource, fields: Mapping[str, FieldSpec],
                 children: Mapping[str, ChildSpec], source_timezone: str,
                 keep: Keep | None = None) -> None:
        self._args = (resource, fields, children, source_timezone)
        self._composers: dict[RowShape, Composer] = {}
        self._keep = keep
        # What it is built from, picklable: a worker process builds the same composer from it
        # (a composer is made of closures, which do not pickle). None with `keep`, a closure
        # over the source's plan: such records are composed in the cycle's process.
        self.recipe = None if keep is not None else ComposerRecipe(
            resource, dict(fields), dict(children), source_timezone)

    @classmethod
    def of(cls, recipe: ComposerRecipe) -> RowComposer:
        return cls(recipe.resource, recipe.fields, recipe.children, recipe.source_timezone)

    def __call__(self, row: SourceRow) -> SourceRecord:
        composer = self._composers.get(row.shape)
        if composer is None:
            composer = self._composers[row.shape] = Composer(
                *self._args, child_labels=dict(row.shape.children), labels=row.shape.labels)
        if composer.compose_raw is not None:  # the driver's tuples as they are
            record = composer.compose_raw(row.key, row.raw, row.kids)
        else:
            positional = composer.positional
            # Children read by position get the driver's tuples as they are (their parent
            # key, last, is never read); the others a dict per row.
            children = {
                name: rows if name in positional else [dict(zip(labels, r)) for r in rows]  # noqa: B905
                for (name, labels), rows in zip(row.shape.children, row.kids)  # noqa: B905
            }
            record = composer.compose(row.key, row.values, children)
        if row.repeats > 1:
            record = replace(record, problems=(*record.problems, _repeated(row)))
        if self._keep is not None:
            record = replace(record, kept=self._keep(row, record))
        return record


@dataclass(frozen=True)
class ComposerRecipe:
    """A `RowComposer`'s inputs: the resource, its fields and children as mapped, the zone."""

    resource: Resource
    fields: dict[str, FieldSpec]
    children: dict[str, ChildSpec]
    source_timezone: str


@dataclass(frozen=True)
class Readings:
    """Source rows in key order, and how to compose each into its record.

    Kept apart so that a caller can skip composing rows it can tell are unchanged from their
    raw values (the planner, with `diff.source_fingerprint`).
    """

    rows: Iterator[SourceRow]
    compose: RowComposer

    def records(self) -> Generator[SourceRecord, None, None]:
        """Every row composed; closing this closes the stream (its connections go back)."""
        try:
            for row in self.rows:
                yield self.compose(row)
        finally:
            if isinstance(self.rows, Generator):
                self.rows.close()


def _repeated(row: SourceRow) -> str:
    return (
        f"duplicate key {row.key!r}: {row.repeats} source rows share it, so none is sent; fix: "
        "set key: to columns that identify one row, or make each join/query give one row per key"
    )
