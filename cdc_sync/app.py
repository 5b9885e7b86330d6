"""Wiring: open the mapping, the shop, the state DB and the Metrilo client from Settings.

Kept apart from the CLI so the daemon, the demo and tests build an engine the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import sqlalchemy as sa

from cdc_sync import __version__
from cdc_sync.cycle.engine import SyncEngine
from cdc_sync.cycle.options import ProgressCallback
from cdc_sync.errors import MappingError
from cdc_sync.mapping.loader import LoadedMapping, load_mapping
from cdc_sync.metrilo.client import MetriloClient
from cdc_sync.metrilo.retry import RetryPolicy
from cdc_sync.settings import Settings
from cdc_sync.source import ShopSource, connect_shop
from cdc_sync.state import StateStore


def open_client(settings: Settings, *, platform: str = "cdc-sync") -> MetriloClient:
    """The Metrilo client; token and secret must be set."""
    settings.require("metrilo_api_token", "metrilo_api_secret")
    return MetriloClient(
        token=settings.metrilo_api_token,
        secret=settings.secret(),
        base_url=settings.metrilo_api_url,
        platform=platform,
        plugin_version=__version__,
        timeout=settings.http_timeout,
        max_items=settings.batch_size,
        concurrency=settings.concurrency,
        retry=RetryPolicy(
            max_attempts=settings.max_attempts, max_elapsed=settings.max_retry_seconds
        ),
    )


def open_state(settings: Settings) -> StateStore:
    """The state DB, migrated to the newest schema."""
    return StateStore.open(settings.state_url.get_secret_value())


def checked_source(shop: sa.Engine, mapping: LoadedMapping, *,
                   digests: bool = True) -> ShopSource:
    """The shop source, once the mapping fits the shop's schema exactly as `check` says.

    Checked before anything is read or sent, so a mistake in a later resource cannot let the
    earlier ones go out and then stop halfway.
    """
    source = ShopSource(shop, mapping, digests=digests)
    problems = source.check(data=False)
    if problems:
        raise MappingError(problems, title=f"{mapping.path} does not fit the shop")
    return source


@contextmanager
def open_engine(
    settings: Settings,
    *,
    send: bool = True,
    mapping: LoadedMapping | None = None,
    on_progress: ProgressCallback | None = None,
) -> Iterator[SyncEngine]:
    """A ready engine; with send=False (dry runs) no Metrilo credentials are needed."""
    settings.require("source_url", *(("metrilo_api_token", "metrilo_api_secret") if send else ()))
    loaded = mapping or load_mapping(settings.mappings)
    with ExitStack() as stack:
        shop = connect_shop(settings.source_url.get_secret_value())
        stack.callback(shop.dispose)
        source = checked_source(shop, loaded, digests=settings.digests)
        state = open_state(settings)
        stack.callback(state.close)
        client = None
        if send:
            client = open_client(settings, platform=f"cdc-sync/{shop.dialect.name}")
            stack.callback(client.close)
        yield SyncEngine(
            mapping=loaded,
            source=source,
            state=state,
            client=client,
            on_progress=on_progress,
            recheck_seconds=settings.recheck_seconds,
            rejection_threshold=settings.rejection_threshold,
            compose_workers=settings.workers,
        )
