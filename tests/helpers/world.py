"""A demo shop, the real sandbox and a state DB wired into engines, the way `cdc-sync` wires them.

`World` is what the engine tests share: it seeds a demo shop (writable engine for mutations,
read-only one for cdc-sync), runs cycles through fresh engines (as separate CLI runs would),
and compares what the sandbox holds with what the shop composes, field by field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml

from cdc_sync.core.report import CycleReport
from cdc_sync.core.resources import Payload, Resource
from cdc_sync.core.validate import reasons_to_hold
from cdc_sync.cycle.engine import SyncEngine
from cdc_sync.cycle.options import CycleOptions
from cdc_sync.demo.generate import generate
from cdc_sync.demo.scenario import demo_mapping_path
from cdc_sync.mapping.loader import LoadedMapping, load_mapping
from cdc_sync.metrilo.client import MetriloClient
from cdc_sync.metrilo.retry import RetryPolicy
from cdc_sync.sandbox import Sandbox
from cdc_sync.source import ShopSource, connect_shop
from cdc_sync.state import StateRow, StateStore

TOKEN = "test-token"
SECRET = "test-secret-value"

# Where each resource's records land in the sandbox (its store's resource names).
SANDBOX_RESOURCE = {
    Resource.CUSTOMERS: "customers",
    Resource.GUEST_CUSTOMERS: "customers",
    Resource.CATEGORIES: "categories",
    Resource.DELETED_PRODUCTS: "products",
    Resource.PRODUCTS: "products",
    Resource.ORDERS: "orders",
}

FAST_RETRIES = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_elapsed=5)


@dataclass(frozen=True)
class ShopSize:
    customers: int = 60
    categories: int = 5
    products: int = 30
    orders: int = 200


def mapping_file(tmp: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """The demo mapping, edited by `edit` (a function changing the parsed YAML), as a file."""
    data = yaml.safe_load(demo_mapping_path().read_text(encoding="utf-8"))
    if edit is not None:
        edit(data)
    path = tmp / "mappings.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class World:
    """One demo shop, one sandbox, one state DB."""

    tmp: Path
    shop_url: str
    state_url: str
    sandbox: Sandbox
    shop: sa.Engine  # writable: tests change the shop through it (cdc-sync reads read-only)
    mapping: LoadedMapping
    retry: RetryPolicy = FAST_RETRIES
    _stack: ExitStack = field(default_factory=ExitStack)

    # -- the mapping --------------------------------------------------------------------

    def edit_mapping(self, edit: Callable[[dict[str, Any]], None]) -> None:
        """Change mappings.yaml (as a user would between cycles)."""
        data = yaml.safe_load(self.mapping.path.read_text(encoding="utf-8"))
        edit(data)
        self.mapping.path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        self.mapping = load_mapping(self.mapping.path)

    # -- changing the shop --------------------------------------------------------------

    def write(self, table: sa.Table, row_id: int, **values: Any) -> None:
        """Change a row in place, as a writer that stamps nothing (or forgets updated_at): its
        cursor moves only if `values` set it, so only a full read sees the change otherwise."""
        with self.shop.begin() as conn:
            conn.execute(table.update().where(table.c.id == row_id).values(**values))

    # -- running cycles -----------------------------------------------------------------

    def client(self, *, transport: httpx.BaseTransport | None = None, token: str = TOKEN,
               secret: str = SECRET, **options: Any) -> MetriloClient:
        options.setdefault("retry", self.retry)
        return MetriloClient(token=token, secret=secret, base_url=self.sandbox.url,
                             transport=transport, **options)

    @contextmanager
    def engine(self, *, client: MetriloClient | None = None, send: bool = True,
               state: StateStore | None = None, source_batch: int | None = None,
               source: ShopSource | None = None,
               **engine_options: Any) -> Iterator[SyncEngine]:
        """A fresh engine on a fresh read-only shop connection, like one CLI run (or on
        `source`, built by the caller)."""
        with ExitStack() as stack:
            shop = connect_shop(self.shop_url)
            stack.callback(shop.dispose)
            if state is None:
                state = stack.enter_context(StateStore.open(self.state_url))
            if client is None and send:
                client = stack.enter_context(self.client())
            if source is None:
                source = (ShopSource(shop, self.mapping) if source_batch is None
                          else ShopSource(shop, self.mapping, batch_size=source_batch))
            yield SyncEngine(mapping=self.mapping, source=source, state=state, client=client,
                             **engine_options)

    def sync(self, options: CycleOptions | None = None, **engine_options: Any) -> CycleReport:
        with self.engine(**engine_options) as engine:
            return engine.run(options or CycleOptions())

    def state(self) -> StateStore:
        store = StateStore.open(self.state_url)
        self._stack.callback(store.close)
        return store

    def held(self, resource: str, key: str) -> Payload:
        """The record the sandbox holds (it must hold one)."""
        record = self.sandbox.store.get(resource, key)
        assert record is not None, f"the sandbox holds no {resource} {key!r}"
        return record

    def rows(self, resource: Resource, keys: list[str]) -> dict[str, StateRow]:
        return self.state().lookup(resource.value, keys)

    # -- what the shop says Metrilo should hold -----------------------------------------

    def composed(self, resource: Resource) -> dict[str, Payload]:
        """The records the mapping composes from the shop now, by key (valid or not)."""
        shop = connect_shop(self.shop_url)
        try:
            return {r.key: r.payload for r in ShopSource(shop, self.mapping).records(resource)}
        finally:
            shop.dispose()

    def expected(self) -> dict[str, dict[str, Payload]]:
        """Every valid record the shop composes, by sandbox resource and Metrilo id."""
        found: dict[str, dict[str, Payload]] = {name: {} for name in SANDBOX_RESOURCE.values()}
        shop = connect_shop(self.shop_url)
        try:
            source = ShopSource(shop, self.mapping)
            for resource in source.mapped_resources():
                key = "email" if SANDBOX_RESOURCE[resource] == "customers" else "id"
                for record in source.records(resource):
                    held = reasons_to_hold(resource.endpoint, record.payload)
                    if not record.problems and not held:
                        found[SANDBOX_RESOURCE[resource]][str(record.payload[key])] = record.payload
        finally:
            shop.dispose()
        return found

    def differences(self, *, extra_ok: dict[str, set[str]] | None = None) -> list[str]:
        """How the sandbox differs from the source (empty: equal, field by field)."""
        problems: list[str] = []
        for name, wanted in self.expected().items():
            held = self.sandbox.store.records(name)
            allowed = (extra_ok or {}).get(name, set())
            missing = sorted(set(wanted) - set(held))
            extra = sorted(set(held) - set(wanted) - allowed)
            if missing:
                problems.append(f"{name}: {len(missing)} missing, e.g. {missing[:5]}")
            if extra:
                problems.append(f"{name}: {len(extra)} not in the source, e.g. {extra[:5]}")
            for key in sorted(set(wanted) & set(held)):
                if _normal(name, held[key], wanted[key]) != _normal(name, wanted[key], None):
                    problems.append(f"{name} {key}: sandbox {held[key]} != source {wanted[key]}")
        return problems[:20]

    def close(self) -> None:
        self._stack.close()


def _normal(resource: str, record: Payload, expected: Payload | None) -> Payload:
    """A record with Metrilo's merged fields put in a comparable form.

    Customer tags are a set (merged server-side, removed only by untag); product options
    merge by id, so options Metrilo still holds but the shop dropped are left out.
    """
    result = dict(record)
    if resource == "customers" and "tags" in result:
        result["tags"] = sorted(result["tags"])
        if not result["tags"]:
            del result["tags"]
    if resource == "products" and "options" in result:
        keep = None if expected is None else {o["id"] for o in expected.get("options", ())}
        options = [o for o in result["options"] if keep is None or o["id"] in keep]
        result["options"] = sorted(options, key=lambda o: str(o["id"]))
        if not result["options"]:
            del result["options"]
    return result


@contextmanager
def demo_world(tmp: Path, shop_url: str, state_url: str, *, size: ShopSize = ShopSize(),
               seed: int = 7,
               edit: Callable[[dict[str, Any]], None] | None = None) -> Iterator[World]:
    """A seeded demo shop at `shop_url`, a running sandbox and a state DB at `state_url`."""
    shop = sa.create_engine(shop_url)
    generate(shop, customers=size.customers, categories=size.categories,
             products=size.products, orders=size.orders, seed=seed)
    mapping = load_mapping(mapping_file(tmp, edit))
    with Sandbox(token=TOKEN, secret=SECRET) as sandbox:
        world = World(tmp, shop_url, state_url, sandbox, shop, mapping)
        try:
            yield world
        finally:
            world.close()
            shop.dispose()

