"""`cdc-sync check`, `cdc-sync preview` and `cdc-sync demo-shop`: the mapping against a shop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import sqlalchemy as sa

from cdc_sync.cli.common import settings_from, settings_options
from cdc_sync.cli.show import print_freshness
from cdc_sync.core import freshness
from cdc_sync.core.resources import Resource
from cdc_sync.core.validate import reasons_to_hold
from cdc_sync.errors import CdcSyncError, MappingError, Problem, SourceError
from cdc_sync.mapping.loader import load_mapping
from cdc_sync.settings import Settings, redact_url, usual_url
from cdc_sync.source import ShopSource, connect_shop
from cdc_sync.source.sample import sample_findings


@contextmanager
def _shop(settings: Settings) -> Iterator[ShopSource]:
    settings.require("source_url")
    mapping = load_mapping(settings.mappings)
    engine = connect_shop(settings.source_url.get_secret_value())
    try:
        yield ShopSource(engine, mapping)
    finally:
        engine.dispose()


@click.command("check")
@settings_options
def check(**kwargs: Any) -> None:
    """Check mappings.yaml against the shop database, reporting every problem at once.

    Tables, columns, join aliases and template placeholders must exist; coercions must fit
    the columns' types; query, where and expression SQL must run (with LIMIT 0); keys must be
    unique; Metrilo's required fields must be mapped; guest customers and deleted products
    must have what they need. Then the first 50 rows of each resource are composed as a sync
    would: a field no sampled record can send is a problem, one some cannot send a warning, as
    is a resource that reads no rows. Reads only, writes nothing. Exits 2 when there are
    problems.
    """
    settings = settings_from(kwargs)
    with _shop(settings) as source:
        problems = source.check()
        findings = sample_findings(source, source.mapping)
        warnings = [*findings.warnings, *_change_detection(source)]
        if warnings:
            click.echo(f"warnings ({len(warnings)}):")
            for warning in warnings:
                click.echo(f"  - {warning}")
        problems = [*problems, *findings.errors]
        if problems:
            raise MappingError(problems, title=f"{settings.mappings} does not fit the shop")
        resources = source.mapped_resources()
        # Every table records read, those inside raw SQL (query:, expression:) included.
        dependencies = source.tracking.dependencies().by_resource
        tables = {d.table for deps in dependencies.values() for d in deps}
    # The catalogue's list: exactly what `sync` sends and `preview` shows, in import order.
    click.echo(f"resources: {', '.join(r.value for r in resources)}")
    click.echo(f"{settings.mappings}: OK ({_count(len(resources), 'resource')}, "
               f"{_count(len(tables), 'table')})")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _change_detection(source: ShopSource) -> list[Problem]:
    """Print how each dependency's changes are seen; the blind spots, as warnings."""
    dependencies = source.tracking.dependencies()
    minutes = source.mapping.spec.sync.full_reconcile_minutes
    hints = source.tracking.hints(dependencies)
    print_freshness({"reconcile_minutes": minutes,
                     "resources": freshness.rows(dependencies, minutes)})
    advice = freshness.suggestions(dependencies, hints)
    if advice:
        click.echo("suggested cursors (from the schema):")
        for line in advice:
            click.echo(f"  - {line}")
    return freshness.blind_spots(dependencies, source.mapping, minutes, hints)


@click.command("preview")
@click.argument("resource", type=click.Choice([r.value for r in Resource]))
@click.option("--limit", default=5, show_default=True, type=click.IntRange(min=1),
              help="How many records to show (the first ones in key order).")
@click.option("--key", "keys", multiple=True,
              help="Show the record with this source key instead (repeatable).")
@settings_options
def preview(resource: str, limit: int, keys: tuple[str, ...], **kwargs: Any) -> None:
    """Print RESOURCE's records as cdc-sync would send them, as JSON. Sends nothing.

    Each record comes with its key, the payload, `problems` (values that could not be
    composed) and `contract` (why Metrilo would refuse it); both empty means it would be sent.
    """
    settings = settings_from(kwargs)
    chosen = Resource(resource)
    with _shop(settings) as source:
        if chosen not in source.mapped_resources():
            raise CdcSyncError(f"{resource} is not mapped (or is disabled) in {settings.mappings}; "
                               f"fix: add a {resource}: block, or preview one of "
                               f"{', '.join(r.value for r in source.mapped_resources())}")
        wanted = list(keys) if keys else source.sample_keys(chosen, limit)
        # Read to the end (the keys bound it): a half-read MySQL stream warns when closed.
        records = list(source.records(chosen, keys=wanted))
        shown = [
            {"key": r.key, "payload": r.payload, "problems": list(r.problems),
             "contract": reasons_to_hold(chosen.endpoint, r.payload)}
            for r in records
        ]
    click.echo(json.dumps(shown, indent=2, ensure_ascii=False, default=str))
    found = {r.key for r in records}
    for key in dict.fromkeys(k for k in keys if k not in found):
        click.echo(f"note: no {resource} record with key {key}; the shop has no such row, or "
                   f"the mapping's where (or query) leaves it out", err=True)



@click.command("demo-shop")
@click.argument("url")
@click.option("--scale", default="small", show_default=True,
              help="`small` (40 customers, 120 orders) or a number of customers N "
                   "(then 5N orders, about 15N order lines, N/20 products).")
@click.option("--seed", default=1, show_default=True, type=int,
              help="Random seed: the same seed makes the same shop.")
def demo_shop(url: str, scale: str, seed: int) -> None:
    """Create and seed a demo shop in the empty database at URL (SQLAlchemy URL).

    The demo shop has what cdc-sync must cope with: guest orders, a deleted product still on
    order lines, integer status codes, Y/N flags, tags and categories in link tables.
    mappings.yaml at the top of the repository maps it.
    """
    from cdc_sync.demo.generate import SMALL, generate, scale_for

    sizes = SMALL if scale == "small" else scale_for(_customers(scale))
    engine = _writable_engine(url)
    try:
        _require_empty(engine, url)
        generate(engine, customers=sizes.customers, categories=sizes.categories,
                 products=sizes.products, orders=sizes.orders, seed=seed)
    except sa.exc.SQLAlchemyError as exc:
        raise SourceError(f"seeding the demo shop at {redact_url(url)} failed: "
                          f"{type(exc).__name__}; fix: point URL at an empty database you may "
                          "write to") from None
    finally:
        engine.dispose()
    click.echo(f"demo shop ready at {redact_url(url)}: {sizes.customers} customers, "
               f"{sizes.products} products, {sizes.orders} orders")


def _customers(scale: str) -> int:
    if not scale.isdigit() or int(scale) < 1:
        raise click.BadParameter("use `small` or a positive number of customers",
                                 param_hint="--scale")
    return int(scale)


def _writable_engine(url: str) -> sa.Engine:
    try:
        return sa.create_engine(usual_url(url))
    except (sa.exc.ArgumentError, ImportError):
        raise CdcSyncError(
            f"{redact_url(url)} is not a usable SQLAlchemy URL; fix: e.g. "
            "sqlite:///demo-shop.sqlite or postgresql+psycopg://user@host/db"
        ) from None


def _require_empty(engine: sa.Engine, url: str) -> None:
    from cdc_sync.demo.schema import metadata

    existing = set(sa.inspect(engine).get_table_names()) & set(metadata.tables)
    if existing:
        raise CdcSyncError(f"{redact_url(url)} already has demo shop tables "
                           f"({', '.join(sorted(existing))}); fix: use an empty database")


COMMANDS: list[click.Command] = [check, preview, demo_shop]
