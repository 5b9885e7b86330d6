"""The sandbox's own endpoints under /_sandbox: inspection, faults, reset, and the HTML page."""

from __future__ import annotations

import html
import json
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import parse_qs, unquote

from cdc_sync.errors import FaultsError
from cdc_sync.sandbox.faults import Faults
from cdc_sync.sandbox.protocol import Answer, refusal
from cdc_sync.sandbox.readable import readable
from cdc_sync.sandbox.semantics import RESOURCES, resource_named
from cdc_sync.sandbox.store import SandboxStore

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


def answer_get(path: str, query: str, store: SandboxStore, faults: Faults) -> Answer | None:
    """The answer to GET `path` under /_sandbox, or None when there is no such endpoint."""
    if path == "/_sandbox/summary":
        return Answer(200, store.stats() | {"faults": faults.settings()})
    if path == "/_sandbox/faults":
        return Answer(200, faults.settings())
    if path.startswith("/_sandbox/records/"):
        resource, _, key = path.removeprefix("/_sandbox/records/").partition("/")
        return _records(store, resource, unquote(key), parse_qs(query))
    return None


def answer_post(path: str, body: bytes, store: SandboxStore, faults: Faults) -> Answer | None:
    """The answer to POST `path` under /_sandbox, or None when there is no such endpoint."""
    if path == "/_sandbox/reset":
        store.reset()
        faults.clear()
        return Answer(200, {"status": "reset"})
    if path == "/_sandbox/faults":
        try:
            changes = json.loads(body or b"{}")
            if not isinstance(changes, dict):
                raise FaultsError("sandbox faults: the body must be a JSON object of settings")
            faults.update(changes)
        except (ValueError, FaultsError) as exc:
            return refusal(400, str(exc))
        return Answer(200, faults.settings())
    return None


def _records(store: SandboxStore, name: str, key: str, query: dict[str, list[str]]) -> Answer:
    resource = resource_named(name)
    if resource is None:
        return refusal(404, f"no resource {name!r}; use one of {', '.join(RESOURCES)}")
    if key:
        record = store.get(resource, key)
        if record is None:
            return refusal(404, f"the sandbox holds no {resource} record {key!r}")
        dropped = store.why_dropped(key) if resource == "orders" else None
        return Answer(200, {"resource": resource, "id": key, "record": record, "dropped": dropped})
    try:
        limit = min(int(query.get("limit", [DEFAULT_LIMIT])[0]), MAX_LIMIT)
        offset = int(query.get("offset", [0])[0])
    except ValueError:
        return refusal(400, "limit and offset must be whole numbers")
    if limit < 0 or offset < 0:
        return refusal(400, "limit and offset must not be negative")
    records = store.records(resource, limit=limit, offset=offset)
    total = store.counts()[resource]
    return Answer(200, {"resource": resource, "total": total, "limit": limit, "offset": offset,
                        "records": records})


def render_page(store: SandboxStore, faults: Faults, api_url: str) -> bytes:
    """The HTML status page: counts, dropped orders, requests and recent records."""
    stats = store.stats()
    page = resources.files("cdc_sync.sandbox").joinpath("page.html")
    template = Template(page.read_text(encoding="utf-8"))
    text = template.substitute(
        api_url=_e(api_url),
        counts=_rows([(name, n) for name, n in stats["records"].items()]),
        dropped_count=stats["dropped_orders"]["count"],
        dropped=_rows(list(stats["dropped_orders"]["first"].items())[:20]),
        requests=_rows([(path, status, n) for path, by_status in stats["requests"].items()
                        for status, n in by_status.items()]),
        duplicates=_e(json.dumps(stats["duplicates"])),
        faults=_e(json.dumps(faults.settings())),
        recent=_rows([_recent_row(resource, key, record, store)
                      for resource, key, record in store.recent()]),
    )
    return text.encode("utf-8")


def _recent_row(resource: str, key: str, record: dict[str, Any],
                store: SandboxStore) -> tuple[Any, ...]:
    shown = readable(resource, record, lambda email: store.get("customers", email))
    raw = _Json(json.dumps(record, ensure_ascii=False, indent=1))
    return (resource, key, shown.what, shown.when, _Amount(shown.amount), shown.status, raw)


class _Amount(str):
    """A cell aligned right, as amounts are."""

    __slots__ = ()


class _Json(str):
    """A cell holding the record's JSON, folded away."""

    __slots__ = ()


def _rows(rows: list[tuple[Any, ...]]) -> str:
    return "".join("<tr>" + "".join(_cell(value) for value in row) + "</tr>" for row in rows)


def _cell(value: Any) -> str:
    if isinstance(value, _Json):
        return f"<td><details><summary>JSON</summary><pre>{_e(value[:4000])}</pre></details></td>"
    if isinstance(value, _Amount):
        return f'<td class="amount">{_e(value)}</td>'
    return f"<td>{_e(str(value))}</td>"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
