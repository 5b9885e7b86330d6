"""`cdc-sync demo`: a guided tour on a demo shop and the local sandbox, in under a minute."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

from cdc_sync.app import open_engine
from cdc_sync.cli.show import print_report
from cdc_sync.cycle.engine import SyncEngine
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.demo.generate import SMALL, generate
from cdc_sync.demo.scenario import Changes, demo_mapping_path, make_changes
from cdc_sync.sandbox import Sandbox
from cdc_sync.settings import Settings, load_settings

DEMO_TOKEN = "demo-token"  # noqa: S105 - the local sandbox's own
DEMO_SECRET = "demo-secret"  # noqa: S105 - the local sandbox's own, not a real secret


def _step(number: int, text: str) -> None:
    click.secho(f"\n== {number}. {text}", bold=True)


@click.command()
@click.option("--dir", "workdir", type=click.Path(path_type=Path), default=Path("cdc-sync-demo"),
              show_default=True, help="Folder for the demo shop, state DB and sandbox store.")
@click.option("--keep-running", is_flag=True,
              help="Keep the sandbox (and its page) up after the tour, until Ctrl-C.")
def demo(workdir: Path, keep_running: bool) -> None:
    """A guided tour: demo shop, sandbox, first sync, shop changes, incremental sync.

    Creates a demo shop (SQLite) in --dir, starts the local Metrilo sandbox, runs a first sync,
    changes the shop (an order status, a guest order, a removed tag, a deleted product, a line
    added to an order without touching the order) and
    syncs again, printing what happened at each step and where to look. Sends nothing to
    Metrilo itself.
    """
    started = time.monotonic()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    shop_url = f"sqlite:///{workdir / 'shop.sqlite'}"
    _step(1, f"demo shop: {SMALL.customers} customers, {SMALL.products} products, "
             f"{SMALL.orders} orders, guest orders and a product deleted after it was ordered")
    shop = sa.create_engine(shop_url)
    generate(shop, customers=SMALL.customers, categories=SMALL.categories,
             products=SMALL.products, orders=SMALL.orders)
    click.echo(f"   {shop_url}, mapped by {demo_mapping_path()}")
    with Sandbox(token=DEMO_TOKEN, secret=DEMO_SECRET,
                 store_path=workdir / "sandbox.sqlite") as sandbox:
        _step(2, f"local Metrilo sandbox at {sandbox.url} (page: {sandbox.base}/)")
        settings = _settings(workdir, shop_url, sandbox.url)
        with open_engine(settings) as engine:
            _first_sync(engine, sandbox)
            changes = _change_shop(shop)
            _incremental_sync(engine, sandbox, changes)
            _full_reconciliation(engine, sandbox, changes)
        _where_to_look(workdir, settings, time.monotonic() - started)
        if keep_running:
            click.echo(f"\nsandbox still up at {sandbox.base}/ (Ctrl-C to stop)")
            sandbox.serve_forever()
    shop.dispose()


def _settings(workdir: Path, shop_url: str, api_url: str) -> Settings:
    return load_settings({
        "metrilo_api_token": DEMO_TOKEN, "metrilo_api_secret": DEMO_SECRET,
        "metrilo_api_url": api_url, "source_url": shop_url,
        "state_url": f"sqlite:///{workdir / 'state.sqlite'}", "mappings": demo_mapping_path(),
    }, _env_file=None)


def _first_sync(engine: SyncEngine, sandbox: Sandbox) -> None:
    _step(3, "first sync: everything, in Metrilo's import order")
    print_report(engine.run(CycleOptions()))
    stats = sandbox.store.stats()
    click.echo(f"   sandbox holds {json.dumps(sandbox.store.counts())}; orders Metrilo would "
               f"have dropped: {sandbox.store.dropped_count()}; requests: "
               f"{sum(sum(v.values()) for v in stats['requests'].values())}")


def _change_shop(shop: sa.Engine) -> Changes:
    _step(4, "the shop changes")
    changes = make_changes(shop)
    click.echo(f"   order {changes.status_order}: status -> completed\n"
               f"   order {changes.guest_order}: new, by a guest (no customer row)\n"
               f"   customer {changes.untagged_customer}: tag {changes.removed_tag!r} removed\n"
               f"   product {changes.deleted_product}: deleted (it is on order lines)\n"
               f"   order {changes.line_order}: a line added, the order's own row untouched "
               "(order_lines has no timestamp; its serial id is an append key)")
    return changes


def _incremental_sync(engine: SyncEngine, sandbox: Sandbox, changes: Changes) -> None:
    _step(5, "incremental sync: only rows whose updated_at moved are read and sent")
    print_report(engine.run(CycleOptions()))
    order = sandbox.store.get("orders", str(changes.status_order)) or {}
    guest = sandbox.store.get("orders", str(changes.guest_order)) or {}
    click.echo(f"   sandbox: order {changes.status_order} status={order.get('status')!r}; "
               f"guest order {changes.guest_order} {'arrived' if guest else 'MISSING'}, "
               f"dropped: {sandbox.store.why_dropped(str(changes.guest_order)) or 'no'}")
    customer = _customer(sandbox, changes.untagged_customer, engine)
    click.echo(f"   customer {changes.untagged_customer} tags now {customer.get('tags')}")
    lined = sandbox.store.get("orders", str(changes.line_order)) or {}
    click.echo(f"   order {changes.line_order} now has {len(lined.get('products', []))} lines in "
               "the sandbox: the child-only change arrived in this cycle")


def _full_reconciliation(engine: SyncEngine, sandbox: Sandbox, changes: Changes) -> None:
    _step(6, "a full read (`sync --full`; the rolling reconciliation spreads one over each "
             "15-minute window by default): deletions are noticed")
    print_report(engine.run(CycleOptions(full=True)))
    product = sandbox.store.get("products", str(changes.deleted_product))
    click.echo(f"   product {changes.deleted_product} is gone from the shop; Metrilo keeps it "
               f"(orders reference it): {json.dumps(product)[:120]}")


def _customer(sandbox: Sandbox, customer_id: int, engine: SyncEngine) -> dict[str, Any]:
    rows = engine.state.lookup("customers", [str(customer_id)])
    email = rows[str(customer_id)].metrilo_id if str(customer_id) in rows else None
    return (sandbox.store.get("customers", email) or {}) if email else {}


def _where_to_look(workdir: Path, settings: Settings, seconds: float) -> None:
    _step(7, f"done in {seconds:.1f}s; where to look")
    state = settings.state_url.get_secret_value()
    click.echo(f"   cdc-sync status --state-url {state}\n"
               f"   cdc-sync sandbox --store {workdir / 'sandbox.sqlite'}   "
               "(then open the page it prints)\n"
               f"   cdc-sync preview orders --source-url sqlite:///{workdir / 'shop.sqlite'} "
               f"--mappings {demo_mapping_path()}")


COMMANDS: list[click.Command] = [demo]
