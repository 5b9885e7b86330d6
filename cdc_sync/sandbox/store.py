"""What the sandbox holds: the latest version of every record, and what it was sent.

Records live in SQLite (a file when `path` is given, so a restarted sandbox keeps them; else a
private temporary database that spills to disk), stored as canonical JSON so memory stays
bounded however many records a benchmark sends. Request, item and duplicate counts are kept
in memory. Every method is thread-safe.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cdc_sync.errors import CdcSyncError
from cdc_sync.resources import Payload
from cdc_sync.sandbox.semantics import OPERATIONS, RESOURCES, Operation

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sandbox_records (
    resource TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    dropped TEXT,
    PRIMARY KEY (resource, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sandbox_dropped ON sandbox_records (resource) WHERE dropped IS NOT NULL;
"""
_UPSERT = (
    "INSERT INTO sandbox_records (resource, id, body, dropped) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (resource, id) DO UPDATE SET body = excluded.body, dropped = excluded.dropped"
)
RECENT = 20


class SandboxStoreError(CdcSyncError):
    """The sandbox's store file could not be opened."""


def canonical(record: Payload) -> str:
    """One text per distinct record, so identical re-sends compare equal."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class SandboxStore:
    """The records a sandbox received, with Metrilo's merge semantics, and counters."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        try:
            # "" opens a private temporary on-disk database, deleted on close.
            self._db = sqlite3.connect(
                str(path) if path else "", check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA synchronous = OFF")  # a test double: speed over durability
            if path:
                self._db.execute("PRAGMA journal_mode = WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise SandboxStoreError(
                f"sandbox store {path}: cannot open it as SQLite ({exc}); pass --store a "
                "writable file path that is a sandbox store or does not exist yet"
            ) from None
        self._lock = threading.Lock()
        self._reset_counters()

    def _reset_counters(self) -> None:
        self._requests: Counter[tuple[str, str]] = Counter()
        self._items: Counter[str] = Counter()
        self._duplicates: Counter[str] = Counter()
        self._ignored: Counter[str] = Counter()
        self._recent: deque[tuple[str, str]] = deque(maxlen=RECENT)

    # --- writing ---------------------------------------------------------------------------

    def apply(self, path: str, items: Sequence[Payload]) -> None:
        """Fold validated `items` sent to contract `path` ("order/batch") into the store."""
        operation = OPERATIONS[path]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for item in items:
                    self._apply_one(path, operation, item)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._items[operation.resource] += len(items)

    def _apply_one(self, path: str, operation: Operation, item: Payload) -> None:
        key = str(item[operation.key])
        held_text = self._body(operation.resource, key)
        held = json.loads(held_text) if held_text is not None else None
        record = operation.merge(held, item)
        if record is None:
            self._ignored[path] += 1  # tagging a customer Metrilo does not know: no effect
            return
        text = canonical(record)
        if text == held_text:
            self._duplicates[operation.resource] += 1
        dropped = self._why_dropped(record) if operation.resource == "orders" else None
        self._db.execute(_UPSERT, (operation.resource, key, text, dropped))
        self._recent.appendleft((operation.resource, key))

    def _why_dropped(self, order: Payload) -> str | None:
        """Why Metrilo would silently drop this order: a customer or product it never got."""
        missing: list[str] = []
        email = order.get("email")
        if email is not None and self._body("customers", email) is None:
            missing.append(f"customer {email!r}")
        for line in order.get("products", ()):
            product_id = line["productId"]
            if self._body("products", product_id) is None:
                missing.append(f"product {product_id!r}")
        if not missing:
            return None
        return "never received " + ", ".join(dict.fromkeys(missing))

    def count_request(self, path: str, status: int | str) -> None:
        """Count one request to `path` by its outcome (an HTTP status, or "dropped")."""
        with self._lock:
            self._requests[(path, str(status))] += 1

    def reset(self) -> None:
        """Forget every record and counter."""
        with self._lock:
            self._db.execute("DELETE FROM sandbox_records")
            self._reset_counters()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- reading ---------------------------------------------------------------------------

    def _body(self, resource: str, key: str) -> str | None:
        row = self._db.execute(
            "SELECT body FROM sandbox_records WHERE resource = ? AND id = ?", (resource, key)
        ).fetchone()
        return None if row is None else str(row[0])

    def get(self, resource: str, key: str) -> Payload | None:
        """The record held for `key` ("ann@example.com", "91"), or None."""
        with self._lock:
            text = self._body(resource, key)
        return None if text is None else _load(text)

    def records(self, resource: str, *, limit: int | None = None, offset: int = 0
                ) -> dict[str, Payload]:
        """Records held for `resource` ("orders"), by key in key order; a page if `limit`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, body FROM sandbox_records WHERE resource = ? ORDER BY id "
                "LIMIT ? OFFSET ?",
                (resource, -1 if limit is None else limit, offset),
            ).fetchall()
        return {str(key): _load(body) for key, body in rows}

    def dropped_orders(self, *, limit: int | None = None) -> dict[str, str]:
        """Order id -> why Metrilo would drop it (never received its customer or a product)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, dropped FROM sandbox_records "
                "WHERE resource = 'orders' AND dropped IS NOT NULL ORDER BY id LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()
        return {str(key): str(reason) for key, reason in rows}

    def why_dropped(self, order_id: str) -> str | None:
        """Why Metrilo would drop the held order `order_id`, or None (kept, or not held)."""
        with self._lock:
            row = self._db.execute(
                "SELECT dropped FROM sandbox_records WHERE resource = 'orders' AND id = ?",
                (order_id,),
            ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def dropped_count(self) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM sandbox_records "
                "WHERE resource = 'orders' AND dropped IS NOT NULL"
            ).fetchone()
        return int(row[0])

    def counts(self) -> dict[str, int]:
        """How many records are held per resource (0 for none)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT resource, COUNT(*) FROM sandbox_records GROUP BY resource"
            ).fetchall()
        return dict.fromkeys(RESOURCES, 0) | {str(r): int(n) for r, n in rows}

    def recent(self) -> list[tuple[str, str, Payload]]:
        """The last records written (resource, key, record), newest first."""
        with self._lock:
            keys = list(self._recent)
        found = ((resource, key, self.get(resource, key)) for resource, key in keys)
        return [(resource, key, record) for resource, key, record in found if record is not None]

    def stats(self) -> dict[str, Any]:
        """Everything `GET /_sandbox/summary` shows, as JSON-ready data."""
        counts = self.counts()
        dropped = {"count": self.dropped_count(), "first": self.dropped_orders(limit=100)}
        with self._lock:
            requests: dict[str, dict[str, int]] = {}
            for (path, status), n in sorted(self._requests.items()):
                requests.setdefault(path, {})[status] = n
            return {
                "records": counts,
                "dropped_orders": dropped,
                "requests": requests,
                "items_accepted": dict(self._items),
                "duplicates": dict(self._duplicates),
                "ignored_tag_requests": dict(self._ignored),
            }


def _load(text: str) -> Payload:
    record: Payload = json.loads(text)
    return record
