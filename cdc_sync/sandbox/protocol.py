"""The checks Metrilo makes on a request to a contract path, in its order, as answers.

Kept apart from the HTTP plumbing so the order of checks reads in one place:
path (404) -> size (413) -> X-Digest present (401) -> X-Digest valid (403) -> JSON envelope
(400) -> token (401) -> every record valid (400, the whole batch) -> accepted (200).
The first two happen in the server before the body is read; the rest are `check_request`.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from cdc_sync.core.resources import Payload
from cdc_sync.core.validate import validate, validate_envelope
from cdc_sync.metrilo.signing import verify
from cdc_sync.sandbox.semantics import OPERATIONS, is_batch

MAX_BODY = 5_000_000
"""Metrilo's documented 5 MB request limit, read as bytes of body."""
MAX_REASONS = 50


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Accepted:
    """A request that passed every check: the records to store."""

    items: list[Payload]


def refusal(status: int, error: str, reasons: list[str] | None = None, **extra: Any) -> Answer:
    body: dict[str, Any] = {"status": status, "error": error}
    if reasons:
        body["reasons"] = reasons[:MAX_REASONS]
        if len(reasons) > MAX_REASONS:
            body["more_reasons"] = len(reasons) - MAX_REASONS
    return Answer(status, body | extra)


def not_found(path: str) -> Answer:
    return refusal(
        404, f"no such Metrilo path {path!r}; the contract paths are "
        + ", ".join(f"/v2/{p}" for p in sorted(OPERATIONS))
    )


def too_large(length: int) -> Answer:
    return refusal(413, f"request body is {length} bytes, over Metrilo's limit of {MAX_BODY}; "
                        "send smaller batches")


def check_request(
    path: str, digest: str | None, body: bytes, *, token: str, secret: str
) -> Answer | Accepted:
    """Metrilo's checks of one POST to contract `path` after its body was read."""
    if not digest:
        return refusal(401, "X-Digest header is missing; sign every request with the API secret")
    if not verify(body, secret, digest):
        return refusal(403, "X-Digest does not match the body: sign the exact body bytes with "
                            "HMAC-SHA256 keyed by the project's API secret")
    try:
        envelope = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        return refusal(400, f"body is not valid JSON: {exc}")
    reasons = validate_envelope(envelope, batch=is_batch(path))
    if reasons:
        return refusal(400, "malformed request envelope", reasons)
    if not hmac.compare_digest(str(envelope["token"]).encode(), token.encode()):
        return refusal(401, "token is not this project's API token; check METRILO_API_TOKEN")
    return _check_records(path, envelope)


def _check_records(path: str, envelope: dict[str, Any]) -> Answer | Accepted:
    endpoint = OPERATIONS[path].endpoint
    if is_batch(path):
        items: list[Payload] = envelope["batch"]
        labels = [f"batch[{index}]" for index in range(len(items))]
    else:
        items, labels = [envelope["params"]], ["params"]
    reasons: list[str] = []
    invalid: list[int] = []
    for index, (label, item) in enumerate(zip(labels, items, strict=True)):
        found = validate(endpoint, item)
        if found:
            invalid.append(index)
            reasons.extend(f"{label}.{reason}" for reason in found)
    if reasons:
        # A real API refuses the whole batch; the client must bisect to isolate the bad item.
        return refusal(400, f"{len(invalid)} invalid record(s); nothing was stored", reasons,
                       invalid_items=invalid[:MAX_REASONS])
    return Accepted(items)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (send finite numbers only)")
