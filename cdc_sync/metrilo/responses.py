"""What an answer from Metrilo means: the one place responses and transport errors are classified.

The client acts on the Verdict (deliver, bisect, reject, retry, stop); nothing else looks at
status codes.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import httpx

from cdc_sync.metrilo.retry import parse_retry_after

REASON_LIMIT = 300
"""Characters of Metrilo's answer kept in a reason: enough to explain, not a whole page."""

_FATAL_HINTS = {
    401: "the API token is invalid or X-Digest is missing; "
    "check METRILO_API_TOKEN and METRILO_API_SECRET",
    402: "the Metrilo project requires payment; settle the project's billing in Metrilo",
    403: "this IP is not allowed or X-Digest is invalid; "
    "check METRILO_API_SECRET and the project's IP allow-list in Metrilo",
}
_BISECTABLE = frozenset({400, 413, 422})  # answers about the records themselves


class Action(Enum):
    DELIVERED = "delivered"
    BISECT = "bisect"  # some record in the body is bad: split to find it
    REJECT = "reject"  # the whole body is refused, splitting would not help
    RETRY = "retry"  # transient: try again later; after _exchange, retries ran out
    FATAL = "fatal"  # configuration problem: stop everything


@dataclass(frozen=True, slots=True)
class Verdict:
    """The classification of one attempt; `label` is its key in BatchResult.statuses."""

    action: Action
    label: str
    reason: str = ""
    retry_after: float | None = None
    status_code: int = 0


def classify(response: httpx.Response, scrub: Callable[[str], str]) -> Verdict:
    """The one place that decides what an HTTP answer from Metrilo means."""
    code, label = response.status_code, str(response.status_code)
    if 200 <= code < 300:
        return Verdict(Action.DELIVERED, label, status_code=code)
    if code in _FATAL_HINTS:
        return Verdict(Action.FATAL, label, _FATAL_HINTS[code], status_code=code)
    if 300 <= code < 400:
        hint = (
            f"Metrilo redirected to {response.headers.get('location', '?')}; check METRILO_API_URL"
        )
        return Verdict(Action.FATAL, label, hint, status_code=code)
    reason = f"Metrilo answered {code}: {_excerpt(response, scrub)}"
    if code == 429 or code >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return Verdict(Action.RETRY, label, reason, retry_after, code)
    action = Action.BISECT if code in _BISECTABLE else Action.REJECT
    return Verdict(action, label, reason, status_code=code)


def classify_error(exc: httpx.TransportError) -> Verdict:
    """Transport failures are worth a retry (the request may not even have arrived), except a
    certificate that does not verify: retrying cannot fix it, so it stops the cycle."""
    if _certificate_failure(exc):
        return Verdict(
            Action.FATAL,
            "tls_error",
            f"the TLS certificate of METRILO_API_URL did not verify ({exc}); check the URL, or "
            "add your proxy's CA with SSL_CERT_FILE (verification cannot be turned off)",
        )
    if isinstance(exc, httpx.TimeoutException):
        label = "timeout"
    elif isinstance(exc, httpx.ConnectError):
        label = "connect_error"
    elif isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
        label = "network_error"
    else:
        label = "transport_error"
    return Verdict(Action.RETRY, label, f"{label} ({type(exc).__name__}: {exc})")


def _certificate_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _excerpt(response: httpx.Response, scrub: Callable[[str], str]) -> str:
    text = " ".join(scrub(response.text).split()) or "(empty body)"
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"
