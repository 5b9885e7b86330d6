"""Metrilo's request signature: HMAC-SHA256 over the exact body bytes."""

from __future__ import annotations

import hashlib
import hmac


def digest(body: bytes, secret: str) -> str:
    """Lowercase hex HMAC-SHA256 of `body` keyed with the project's API secret (`X-Digest`)."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, given: str) -> bool:
    """Constant-time check of an `X-Digest` header against the body."""
    return hmac.compare_digest(digest(body, secret), given.strip().lower())
