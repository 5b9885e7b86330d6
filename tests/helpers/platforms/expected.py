"""What Metrilo should hold after syncing a platform fixture, and how the sandbox differs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cdc_sync.sandbox.store import SandboxStore


def ms(when: datetime) -> int:
    """Epoch milliseconds of a naive UTC date-time (what Metrilo gets)."""
    return int(when.replace(tzinfo=UTC).timestamp() * 1000)


@dataclass
class Expected:
    """Records by sandbox resource and id, each with the fields that must match."""

    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    categories: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)

    def differences(self, store: SandboxStore) -> list[str]:
        found: list[str] = []
        for name in ("customers", "categories", "products", "orders"):
            wanted: dict[str, dict[str, Any]] = getattr(self, name)
            held = store.records(name)
            if set(wanted) != set(held):
                found.append(f"{name}: missing {sorted(set(wanted) - set(held))[:5]}, "
                             f"extra {sorted(set(held) - set(wanted))[:5]}")
            for key in sorted(set(wanted) & set(held)):
                for field_name, value in wanted[key].items():
                    got = _normal(field_name, held[key].get(field_name))
                    if got != _normal(field_name, value):
                        found.append(f"{name} {key} {field_name}: sandbox {got!r} != {value!r}")
        return found[:25]


def _normal(name: str, value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list) and name == "products":
        return sorted((str(p[0]), float(p[1])) if isinstance(p, tuple) else
                      (str(p["productId"]), float(p["quantity"])) for p in value)
    if isinstance(value, list) and name == "options":
        return sorted(({k: _normal(k, v) for k, v in o.items()} for o in value),
                      key=lambda o: o["id"])
    if isinstance(value, list):
        return sorted(str(v) for v in value)
    if isinstance(value, dict):
        return {k: _normal(k, v) for k, v in value.items()}
    return value
