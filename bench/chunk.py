"""A chunk of a push replayed alone: the compose worker's stages, per record.

    python -m bench.chunk capture --source URL --out F [--rows 1000]
    python -m bench.chunk replay F [--runs 7]
    python -m bench.chunk code F --resource orders

`capture` reads the first rows of each resource of the bench mapping from a shop (read-only)
as the cycle hands them to the compose worker (key, raw tuple, child tuples, shape) and
pickles them with each resource's `ComposerRecipe`. `replay` composes them as the worker
does (`RowComposer.of(recipe)` over `PlainRow`s), then times, per record and in thread CPU
(best of `--runs`): compose, validate (`reasons_to_hold`), and `prepare_rows` whole (compose,
validate, canonical JSON, fingerprint). The replay imports the pure core only. `code` prints
the Python the composer and the contract's `fits` generated for a captured resource's rows
(core/composecode.py, core/fitscode.py), for review.
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from bench.proc import ROOT, emit
from cdc_sync.core.compose import Composer
from cdc_sync.core.prepare import PlainRow, Shape, prepare_rows
from cdc_sync.core.records import ComposerRecipe, RowComposer
from cdc_sync.core.resources import Resource, SourceRecord
from cdc_sync.core.validate import SPECS, reasons_to_hold

RESOURCES = (Resource.CUSTOMERS, Resource.PRODUCTS, Resource.ORDERS)


def capture(source_url: str, out: Path, count: int) -> None:
    from cdc_sync.app import checked_source  # the I/O side, only for capturing
    from cdc_sync.mapping.loader import load_mapping
    from cdc_sync.source import connect_shop

    mapping = load_mapping(Path(ROOT, "mappings.yaml"))
    shop = connect_shop(source_url)
    try:
        source = checked_source(shop, mapping, digests=False)
        chunks = {}
        for resource in RESOURCES:
            readings = source.readings(resource)
            rows = list(itertools.islice(readings.rows, count))
            readings.rows.close()  # type: ignore[attr-defined]
            shape = rows[0].shape
            chunks[resource.value] = (
                readings.compose.recipe,
                (shape.labels, shape.children),
                [(r.key, tuple(r.raw), tuple(tuple(map(tuple, k)) for k in r.kids), r.repeats)
                 for r in rows],
            )
    finally:
        shop.dispose()
    out.write_bytes(pickle.dumps(chunks))


def _best(runs: int, work: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.thread_time()
        work()
        best = min(best, time.thread_time() - started)
    return best


def replay(path: Path, runs: int) -> dict[str, Any]:
    chunks = pickle.loads(path.read_bytes())
    return {name: _stages(recipe, Shape(*shape), rows, runs)
            for name, (recipe, shape, rows) in chunks.items()}


def _stages(recipe: ComposerRecipe, shape: Shape, rows: list[Any], runs: int) -> dict[str, Any]:
    plain = [PlainRow(key, raw, kids, shape, repeats) for key, raw, kids, repeats in rows]
    made = time.thread_time()
    # A PlainRow composes like the SourceRow it was read as (as in cycle/compose_worker.py).
    composer = cast("Callable[[PlainRow], SourceRecord]", RowComposer.of(recipe))
    composer(plain[0])  # builds the shape's composer
    built = time.thread_time() - made
    endpoint = recipe.resource.endpoint
    payloads = [composer(row).payload for row in plain]
    per = 1e6 / len(plain)
    fingerprints: list[str | None] = [None] * len(plain)
    return {
        "rows": len(plain),
        "build_ms": round(built * 1e3, 2),
        "compose_us": round(_best(runs, lambda: [composer(r) for r in plain]) * per, 2),
        "validate_us": round(
            _best(runs, lambda: [reasons_to_hold(endpoint, p) for p in payloads]) * per, 2),
        "prepare_us": round(_best(runs, lambda: prepare_rows(
            composer, recipe.resource, None, plain, fingerprints)) * per, 2),
    }


def code(path: Path, resource: str) -> str:
    """The source of the resource's generated compose (for its captured rows) and fits."""
    recipe, shape, _ = pickle.loads(path.read_bytes())[resource]
    labels = Shape(*shape)
    composer = Composer(recipe.resource, recipe.fields, recipe.children, recipe.source_timezone,
                        child_labels=dict(labels.children), labels=labels.labels)
    return f"{composer.raw_code or composer.code}\n{SPECS[recipe.resource.endpoint].code}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    take = commands.add_parser("capture")
    take.add_argument("--source", required=True, help="the shop's SQLAlchemy URL")
    take.add_argument("--out", required=True, type=Path)
    take.add_argument("--rows", type=int, default=1000)
    again = commands.add_parser("replay")
    again.add_argument("path", type=Path)
    again.add_argument("--runs", type=int, default=7)
    show = commands.add_parser("code")
    show.add_argument("path", type=Path)
    show.add_argument("--resource", default=Resource.ORDERS.value)
    args = parser.parse_args()
    if args.command == "capture":
        capture(args.source, args.out, args.rows)
    elif args.command == "code":
        print(code(args.path, args.resource))
    else:
        emit(replay(args.path, args.runs))


if __name__ == "__main__":
    main()
