"""The daemon's long-lived connections: the state DB once, the shop and Metrilo reused.

A cycle gets a fresh `SyncEngine` (cheap) over the same connections. After a failed cycle the
shop engine and the Metrilo client are dropped and made again for the next one, so a restarted
database server or a half-dead connection pool cannot poison every later cycle. The state
store is opened once; its pool checks connections before use.
"""

from __future__ import annotations

import threading

import httpx
import sqlalchemy as sa

from cdc_sync import __version__
from cdc_sync.app import open_state
from cdc_sync.cycle.engine import SyncEngine
from cdc_sync.cycle.options import ProgressCallback
from cdc_sync.daemon.metrics import CountingTransport, Metrics
from cdc_sync.mapping.loader import LoadedMapping
from cdc_sync.metrilo.client import MetriloClient
from cdc_sync.metrilo.retry import RetryPolicy
from cdc_sync.settings import Settings
from cdc_sync.source import ShopSource, connect_shop
from cdc_sync.state import StateStore


class Connections:
    """Opens lazily, reuses across cycles, `reset` after a failure, `close` at the end."""

    def __init__(self, settings: Settings, mapping: LoadedMapping, metrics: Metrics) -> None:
        settings.require("source_url", "metrilo_api_token", "metrilo_api_secret")
        self._settings = settings
        self._mapping = mapping
        self._metrics = metrics
        self._state: StateStore | None = None
        self._shop: sa.Engine | None = None
        self._source: ShopSource | None = None
        self._client: MetriloClient | None = None

    @property
    def state(self) -> StateStore:
        """The state DB, opened (and migrated) on first use, then kept."""
        if self._state is None:
            self._state = open_state(self._settings)
        return self._state

    def engine(self, *, stop: threading.Event,
               on_progress: ProgressCallback | None = None) -> SyncEngine:
        """An engine for one cycle; `stop` ends that cycle early and cleanly."""
        return SyncEngine(
            mapping=self._mapping,
            source=self._shop_source(),
            state=self.state,
            client=self._metrilo(),
            on_progress=on_progress,
            stop=stop,
            recheck_seconds=self._settings.recheck_seconds,
            rejection_threshold=self._settings.rejection_threshold,
            compose_workers=self._settings.workers,
        )

    def use_mapping(self, mapping: LoadedMapping) -> None:
        """Work with `mapping` from the next engine on (between cycles); the shop stays open."""
        self._mapping = mapping
        self._source = None  # plans and reflection belong to the old mapping

    def reset(self) -> None:
        """Drop the shop engine and the Metrilo client; the next cycle makes new ones."""
        shop, self._shop, self._source = self._shop, None, None
        client, self._client = self._client, None
        if shop is not None:
            shop.dispose()
        if client is not None:
            client.close()

    def close(self) -> None:
        self.reset()
        state, self._state = self._state, None
        if state is not None:
            state.close()

    def _shop_source(self) -> ShopSource:
        if self._source is None:
            self._shop = connect_shop(self._settings.source_url.get_secret_value())
            self._source = ShopSource(self._shop, self._mapping,
                                      digests=self._settings.digests)
        return self._source

    def _metrilo(self) -> MetriloClient:
        if self._client is None:
            self._client = self._open_client()
        return self._client

    def _open_client(self) -> MetriloClient:
        # As app.open_client, plus a transport that counts Metrilo's answers for /metrics.
        settings = self._settings
        limits = httpx.Limits(max_connections=settings.concurrency,
                              max_keepalive_connections=settings.concurrency)
        dialect = self._shop.dialect.name if self._shop is not None else "sql"
        return MetriloClient(
            token=settings.metrilo_api_token,
            secret=settings.secret(),
            base_url=settings.metrilo_api_url,
            platform=f"cdc-sync/{dialect}",
            plugin_version=__version__,
            transport=CountingTransport(self._metrics, httpx.HTTPTransport(limits=limits)),
            timeout=settings.http_timeout,
            max_items=settings.batch_size,
            concurrency=settings.concurrency,
            retry=RetryPolicy(
                max_attempts=settings.max_attempts, max_elapsed=settings.max_retry_seconds
            ),
        )
