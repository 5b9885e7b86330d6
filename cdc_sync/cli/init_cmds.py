"""`cdc-sync init`: write a first mappings.yaml from the shop's schema, checked, atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import click

from cdc_sync.cli.common import settings_from
from cdc_sync.errors import CdcSyncError
from cdc_sync.init.build import InitResult, build
from cdc_sync.source import connect_shop


@click.command("init")
@click.option("--source-url", "source_url",
              help="SQLAlchemy URL of the shop DB [env CDC_SYNC_SOURCE_URL]. Prefer the "
                   "environment when the URL holds a password.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Where to write the mapping [default: CDC_SYNC_MAPPINGS, else mappings.yaml].")
@click.option("--force", is_flag=True, help="Replace the file when it exists.")
def init(output: Path | None, force: bool, **kwargs: Any) -> None:
    """Write a commented mapping for the shop at CDC_SYNC_SOURCE_URL that passes `check`.

    Reflects the shop (reads only), recognises its platform and table prefix, maps customers,
    categories, products and orders, explains each choice in a comment and marks every guess
    with TODO. Then prints per resource its row count and one record, and the next command.
    Never replaces an existing file without --force; the file appears whole or not at all.
    """
    url_flag = kwargs.get("source_url") is not None
    settings = settings_from(kwargs)
    settings.require("source_url")
    target = output or settings.mappings
    _refuse_existing(target, force)
    engine = connect_shop(settings.source_url.get_secret_value())
    try:
        result = build(engine, target)
    finally:
        engine.dispose()
    _write(target, result.text, force)
    _report(target, result, default=output is None and target == Path("mappings.yaml"),
            url_flag=url_flag)


def _refuse_existing(target: Path, force: bool) -> None:
    """Before reading the shop: the file must be new (or --force) and its directory exist."""
    if target.exists() and not force:
        raise CdcSyncError(f"{target} exists; fix: pass --force to replace it, or -o FILE to "
                           "write the mapping elsewhere")
    directory = target.resolve().parent
    if not directory.is_dir():
        raise CdcSyncError(f"cannot write {target}: {directory} is not a directory; fix: create "
                           "it or pass -o with another path")


def _write(target: Path, text: str, force: bool) -> None:
    """Write via a temporary file in the same directory: whole or not at all."""
    directory = target.resolve().parent
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=directory)
    except OSError as exc:
        raise CdcSyncError(f"cannot write {target}: {exc.strerror}; fix: choose a writable "
                           "path with -o") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        _publish(Path(temporary), target, force)
    except FileExistsError:
        raise CdcSyncError(f"{target} appeared while init ran; fix: pass --force to replace "
                           "it") from None
    except OSError as exc:
        raise CdcSyncError(f"cannot write {target}: {exc.strerror}; fix: choose a writable "
                           "path with -o") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _publish(temporary: Path, target: Path, force: bool) -> None:
    """Move the finished file into place; without `force` never over an existing file."""
    if force:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # atomic, and fails if the file appeared meanwhile
    except FileExistsError:
        raise
    except OSError:
        # A filesystem without hard links (some network and container volumes): look once
        # more, then rename, which is still atomic.
        if target.exists():
            raise FileExistsError(target) from None
        os.replace(temporary, target)


def _report(target: Path, result: InitResult, *, default: bool, url_flag: bool) -> None:
    click.echo(f"wrote {target}: {result.platform}")
    for mapped in result.mapped:
        noun = "row" if mapped.rows == 1 and not mapped.capped else "rows"
        rows = f"{mapped.rows}{'+' if mapped.capped else ''} {noun}"
        click.echo(f"  {mapped.resource}: {rows}")
        if mapped.preview:
            click.echo(f"    preview: {mapped.preview}")
    if result.todos:
        click.echo(f"left for you ({len(result.todos)} TODO):")
        for line, text in result.todos:
            click.echo(f"  {target}:{line}: {text}")
    flag = "" if default else f" --mappings {target}"
    # They read the shop too; the URL is not repeated here (it may hold a password).
    where = " (set CDC_SYNC_SOURCE_URL to the shop's URL first)" if url_flag else ""
    click.echo(f"next: review the TODOs, then `cdc-sync preview orders{flag}` and "
               f"`cdc-sync sync --dry-run{flag}`{where}")


COMMANDS: list[click.Command] = [init]
