"""Faults the sandbox injects into Metrilo answers, reproducibly, to exercise the client.

Each request to a contract path draws once from a seeded RNG and gets at most one fault:
a dropped connection, a 429 with Retry-After, a 500/502, or (independently) a delay before
it is answered normally. `limit` caps how many faults are injected in total, so "fail the next
two requests" is `Faults(error_rate=1.0, limit=2)`.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cdc_sync.errors import FaultsError


class Fault(StrEnum):
    """What happens to one request instead of a normal answer."""

    DROP = "drop"  # close the socket without answering
    THROTTLE = "throttle"  # 429 with Retry-After
    ERROR = "error"  # 500 or 502


@dataclass(frozen=True, slots=True)
class Decision:
    """The faults drawn for one request: an optional delay, then an optional fault."""

    delay: float = 0.0
    fault: Fault | None = None
    status: int = 200  # the status to answer for THROTTLE and ERROR


_RATES = ("drop_rate", "throttle_rate", "error_rate", "delay_rate")


@dataclass
class Faults:
    """Fault settings; change them with `update` (thread-safe) or over HTTP."""

    error_rate: float = 0.0
    """Share of requests answered 500 or 502 (chosen at random, equally)."""
    throttle_rate: float = 0.0
    """Share of requests answered 429 with a Retry-After header."""
    retry_after: int = 1
    """Seconds sent in Retry-After."""
    drop_rate: float = 0.0
    """Share of requests whose connection is closed without an answer."""
    delay_rate: float = 0.0
    """Share of requests delayed by `delay` seconds before being handled."""
    delay: float = 0.0
    limit: int | None = None
    """Inject at most this many faults (delays included), then none; None is no limit."""
    paths: list[str] | None = None
    """Only these contract paths (e.g. "order/batch"); None is every contract path."""
    seed: int | None = 0
    injected: int = field(default=0, init=False)
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _lock: threading.Lock = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = _rng(self.seed)
        _check(self.settings())

    def settings(self) -> dict[str, Any]:
        """The settings as plain JSON-ready data (what `GET /_sandbox/faults` shows)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if not f.name.startswith("_")}

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply some settings at once; reseeds the RNG and restarts the `limit` count."""
        unknown = sorted(set(changes) - set(_settable()))
        if unknown:
            raise FaultsError(
                f"sandbox faults: unknown setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(_settable())}"
            )
        with self._lock:
            merged = {**self.settings(), **changes}
            _check(merged)
            for name in _settable():
                setattr(self, name, merged[name])
            self.injected = 0
            self._rng = _rng(self.seed)

    def clear(self) -> None:
        """No faults any more."""
        self.update({name: getattr(Faults, name) for name in _settable()})

    def decide(self, path: str) -> Decision:
        """Draw the faults for one request to `path` (a contract path such as "customer")."""
        with self._lock:
            if self.paths is not None and path not in self.paths:
                return Decision()
            delay = self.delay if self._draw(self.delay_rate) else 0.0
            if self._draw(self.drop_rate):
                return Decision(delay, Fault.DROP)
            if self._draw(self.throttle_rate):
                return Decision(delay, Fault.THROTTLE, 429)
            if self._draw(self.error_rate):
                return Decision(delay, Fault.ERROR, self._rng.choice((500, 502)))
            return Decision(delay)

    def _draw(self, rate: float) -> bool:
        if rate <= 0 or (self.limit is not None and self.injected >= self.limit):
            return False
        if rate >= 1 or self._rng.random() < rate:
            self.injected += 1
            return True
        return False


def _rng(seed: int | None) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible test faults, not cryptography


def _settable() -> list[str]:
    return [f.name for f in dataclasses.fields(Faults) if f.init]


def _check(settings: Mapping[str, Any]) -> None:
    problems = [f"{name} must be a number between 0 and 1, got {settings[name]!r}"
                for name in _RATES if not _is_number_between(settings[name], 0, 1)]
    if not _is_number_between(settings["delay"], 0, 3600):
        problems.append("delay must be a number of seconds from 0 to 3600")
    retry_after = settings["retry_after"]
    if not (isinstance(retry_after, int) and _is_number_between(retry_after, 0, 3600)):
        problems.append("retry_after must be a whole number of seconds from 0 to 3600")
    limit = settings["limit"]
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        problems.append("limit must be null or a whole number >= 0")
    paths = settings["paths"]
    if paths is not None and not (
        isinstance(paths, list) and all(isinstance(p, str) for p in paths)
    ):
        problems.append('paths must be null or a list of contract paths such as "order/batch"')
    if settings["seed"] is not None and not isinstance(settings["seed"], int):
        problems.append("seed must be null or an integer")
    if problems:
        raise FaultsError("sandbox faults: " + "; ".join(problems))


def _is_number_between(value: Any, low: float, high: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
