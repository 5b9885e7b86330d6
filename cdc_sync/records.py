"""Glue between the shop source and compose: merged source rows in, SourceRecords out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace

from cdc_sync.compose import Composer
from cdc_sync.mapping.model import ChildSpec, FieldSpec
from cdc_sync.resources import Resource, SourceRecord
from cdc_sync.source.stream import SourceRow


def compose_records(
    resource: Resource,
    fields: Mapping[str, FieldSpec],
    children: Mapping[str, ChildSpec],
    source_timezone: str,
    rows: Iterable[SourceRow],
) -> Iterator[SourceRecord]:
    """Each row composed into its Metrilo record (the composer is built once, up front)."""
    composer = Composer(resource, fields, children, source_timezone)
    for row in rows:
        record = composer.compose(row.key, row.values, row.children)
        if row.repeats > 1:
            record = replace(record, problems=(*record.problems, _repeated(row)))
        yield record


def _repeated(row: SourceRow) -> str:
    return (
        f"duplicate key {row.key!r}: {row.repeats} source rows share it, so none is sent; fix: "
        "set key: to columns that identify one row, or make each join/query give one row per key"
    )
