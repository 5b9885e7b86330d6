"""The optional webhook: a JSON POST when a cycle fails, rejects too much, or recovers.

A failure is announced once, not at every retry: again only when the error says something
new, and "recovered" once cycles succeed again. A webhook that cannot be reached is logged
and forgotten: it never stops the daemon. Its URL is treated as a secret (chat webhooks carry
their token in the path): logs show its host only.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import httpx

from cdc_sync import __version__
from cdc_sync.daemon.outcome import CycleOutcome, CycleResult

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0
MAX_ERRORS = 10


class Webhook:
    """Decides after each cycle whether to call, and calls."""

    def __init__(
        self,
        url: str,
        *,
        rejections: int = 1,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._url = url
        self._rejections = rejections
        self._http = httpx.Client(
            timeout=TIMEOUT_SECONDS, transport=transport,
            headers={"User-Agent": f"cdc-sync/{__version__}"},
        )
        self._announced: str | None = None  # the failure last announced, until a success

    def __repr__(self) -> str:
        return f"Webhook(host={self.host!r})"

    @property
    def host(self) -> str:
        try:
            return httpx.URL(self._url).host or "?"
        except httpx.InvalidURL:
            return "?"

    def cycle_finished(self, outcome: CycleOutcome) -> None:
        event = self._event(outcome)
        if event is not None:
            self.post(payload(event, outcome))

    def _event(self, outcome: CycleOutcome) -> str | None:
        if outcome.result in (CycleResult.FAILED, CycleResult.PARTIAL):
            errors = "; ".join(outcome.errors)
            if errors == self._announced:
                return None
            self._announced = errors
            return "cycle_failed"
        if outcome.total("rejected") >= self._rejections:
            return "rejections"
        if outcome.ok and self._announced is not None:
            self._announced = None
            return "recovered"
        return None

    def post(self, body: dict[str, Any]) -> bool:
        """POST `body`; False (and a log line) when the webhook did not answer 2xx."""
        try:
            response = self._http.post(self._url, json=body)
        except httpx.HTTPError as exc:
            log.warning("webhook at %s could not be called (%s); carrying on", self.host,
                        type(exc).__name__)
            return False
        if not response.is_success:
            log.warning("webhook at %s answered %d; carrying on", self.host,
                        response.status_code)
            return False
        log.info("webhook at %s called: %s", self.host, body["event"])
        return True

    def close(self) -> None:
        self._http.close()


def payload(event: str, outcome: CycleOutcome) -> dict[str, Any]:
    """What the webhook receives: the event, the cycle's totals and errors, who sends it."""
    counts = outcome.report.counts() if outcome.report is not None else {}
    return {
        "event": event,
        "text": _summary(event, outcome),
        "kind": outcome.kind,
        "result": outcome.result,
        "finished_at": outcome.finished_at,
        "seconds": round(outcome.seconds, 3),
        "sent": outcome.total("sent"),
        "rejected": outcome.total("rejected"),
        "pending": outcome.total("pending"),
        "errors": outcome.errors[:MAX_ERRORS],
        "counts": counts,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "version": __version__,
    }


def _summary(event: str, outcome: CycleOutcome) -> str:
    """One line for chat tools that show a `text` field."""
    if event == "cycle_failed":
        first = outcome.errors[0] if outcome.errors else "unknown error"
        return f"cdc-sync {outcome.kind} cycle failed: {first}"
    if event == "rejections":
        return (f"cdc-sync {outcome.kind} cycle: {outcome.total('rejected')} records rejected; "
                "see `cdc-sync rejected RESOURCE`")
    return f"cdc-sync {outcome.kind} cycles succeed again"
