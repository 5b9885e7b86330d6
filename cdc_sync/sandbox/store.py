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

from cdc_sync.core.diff import canonical_json
from cdc_sync.core.resources import Payload
from cdc_sync.errors import SandboxStoreError
from cdc_sync.sandbox.semantics import OPERATIONS, RESOURCES, replace

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sandbox_records (
    resource TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    dropped TEXT,
    PRIMARY KEY (resource, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sandbox_dropped ON sandbox_records (resource) WHERE dropped IS NOT NULL;
CREATE INDEX IF NOT EXISTS sandbox_keys ON sandbox_records (resource, id);
"""
# sandbox_keys repeats the primary key on purpose: the table's rows carry their bodies, so an
# order's dependency check (is this customer, this product held?) walks far fewer pages in the
# narrow index. Half the lookup time, for about a microsecond more per write.
_UPSERT = (
    "INSERT INTO sandbox_records (resource, id, body, dropped) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (resource, id) DO UPDATE SET body = excluded.body, dropped = excluded.dropped"
)
# The keys go in as one JSON parameter: one statement text however many keys (SQLite's
# statement cache keeps it compiled; an IN list of ?s is a new statement for every length).
_HELD = (
    "SELECT id, body FROM sandbox_records "
    "WHERE resource = ? AND id IN (SELECT value FROM json_each(?))"
)
_HELD_KEYS = (
    "SELECT id FROM sandbox_records WHERE resource = ? AND id IN (SELECT value FROM json_each(?))"
)
RECENT = 20


def canonical(record: Payload) -> str:
    """One text per distinct record, so identical re-sends compare equal."""
    return canonical_json(record).decode("utf-8")


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
        """Fold validated `items` sent to contract `path` ("order/batch") into the store.

        Set-based, as a benchmark needs it: one query for the records held, one per kind of
        dependency of the orders, one executemany for the writes; items apply in order.
        """
        operation = OPERATIONS[path]
        resource = operation.resource
        # `replace` ignores the record held, so it is not decoded (a re-push of orders).
        reads_held = operation.merge is not replace
        with self._lock:
            keys = [str(item[operation.key]) for item in items]
            held = self._bodies(resource, keys)
            written: dict[str, tuple[str, Payload]] = {}
            for key, item in zip(keys, items, strict=True):
                held_text = held.get(key)
                held_record = _load(held_text) if reads_held and held_text is not None else None
                record = operation.merge(held_record, item)
                if record is None:
                    self._ignored[path] += 1  # tagging a customer Metrilo does not know
                    continue
                text = canonical(record)
                if text == held_text:
                    self._duplicates[resource] += 1
                held[key] = text
                written[key] = (text, record)
                self._recent.appendleft((resource, key))
            dropped = self._why_dropped(written) if resource == "orders" else {}
            rows = [(resource, key, text, dropped.get(key)) for key, (text, _) in written.items()]
            self._db.execute("BEGIN")
            try:
                self._db.executemany(_UPSERT, rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._items[resource] += len(items)

    def _why_dropped(self, orders: dict[str, tuple[str, Payload]]) -> dict[str, str]:
        """Why Metrilo would silently drop each order: a customer or product it never got."""
        emails = {order.get("email") for _, order in orders.values()} - {None}
        product_ids = {line["productId"] for _, order in orders.values()
                       for line in order.get("products", ())}
        customers = self._held_keys("customers", [str(e) for e in emails])
        products = self._held_keys("products", [str(p) for p in product_ids])
        reasons = {}
        for key, (_, order) in orders.items():
            missing: list[str] = []
            email = order.get("email")
            if email is not None and email not in customers:
                missing.append(f"customer {email!r}")
            missing += [f"product {line['productId']!r}" for line in order.get("products", ())
                        if line["productId"] not in products]
            if missing:
                reasons[key] = "never received " + ", ".join(dict.fromkeys(missing))
        return reasons

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

    def _bodies(self, resource: str, keys: Sequence[str]) -> dict[str, str]:
        """The bodies held for these keys (absent ones are not held), in one query."""
        return dict(self._db.execute(_HELD, (resource, json.dumps(keys))).fetchall())

    def _held_keys(self, resource: str, keys: Sequence[str]) -> set[str]:
        """Which of these keys are held (their bodies are not read), in one query."""
        rows = self._db.execute(_HELD_KEYS, (resource, json.dumps(keys))).fetchall()
        return {key for (key,) in rows}

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
