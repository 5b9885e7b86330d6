"""Exponential backoff between failed cycles, capped, reset by the first success."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    """After n failures in a row the next attempt waits min(cap, base * 2**(n-1)) seconds."""

    base: float
    cap: float
    failures: int = 0
    not_before: float = 0.0

    def failed(self, now: float) -> float:
        """Record a failure at `now`; returns the delay before the next attempt."""
        self.failures += 1
        delay = min(self.cap, self.base * 2.0 ** min(self.failures - 1, 32))
        self.not_before = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.not_before = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.not_before
