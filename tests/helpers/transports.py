"""An HTTP transport standing between the client and the real sandbox, for answers the sandbox
cannot be asked to give: Metrilo refusing a record that passes local validation, or the token
being revoked in the middle of a cycle. Everything else goes to the sandbox unchanged.
"""

from __future__ import annotations

import json
import threading

import httpx


class Gatekeeper(httpx.BaseTransport):
    """Forwards requests to the sandbox unless a rule of the test answers them first."""

    def __init__(self) -> None:
        # path ("order/batch") -> ids: a request to it holding one of these ids gets a 400
        self.refused: dict[str, set[str]] = {}
        self.unauthorized_after: int | None = None  # requests forwarded before 401s start
        self.forwarded = 0
        self.refusals = 0
        self._lock = threading.Lock()
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.read())
        items = body.get("batch") or [body.get("params") or {}]
        ids = {str(i.get("id") or i.get("email")) for i in items if isinstance(i, dict)}
        refused = self.refused.get(request.url.path.rsplit("/v2/", 1)[-1], set())
        if ids & refused:
            with self._lock:
                self.refusals += 1
            bad = sorted(ids & refused)
            return httpx.Response(400, json={"error": f"invalid record(s) {bad}"})
        with self._lock:
            if self.unauthorized_after is not None and self.forwarded >= self.unauthorized_after:
                return httpx.Response(401, json={"error": "token is not valid"})
            self.forwarded += 1
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()
