"""The sandbox's HTTP server: HTTP/1.1 keep-alive plumbing around the protocol and the store.

One thread per connection (stdlib ThreadingHTTPServer). A request to a contract path is read
whole, then meets its injected faults, then Metrilo's checks (`protocol`), and only then is
stored. Every answer carries a Content-Length so clients can keep the connection alive.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cdc_sync.sandbox import control
from cdc_sync.sandbox.faults import Fault
from cdc_sync.sandbox.protocol import (
    MAX_BODY,
    Accepted,
    Answer,
    check_request,
    not_found,
    refusal,
    too_large,
)
from cdc_sync.sandbox.semantics import OPERATIONS

if TYPE_CHECKING:
    from cdc_sync.sandbox.sandbox import Sandbox

log = logging.getLogger(__name__)

DRAIN_LIMIT = 64_000_000
"""Bodies up to this size are read and discarded before a refusal, keeping the connection."""


class SandboxHTTPServer(ThreadingHTTPServer):
    """The listening server; knows its Sandbox and the connections open on it."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.sandbox = sandbox
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.stopping = False
        super().__init__(address, SandboxHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn): slow on some machines.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002
        """Log instead of printing to stderr; a client hanging up is not worth a traceback."""
        if self.stopping or isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        log.exception("sandbox: error on a connection from %s", client_address)

    def close_connections(self) -> None:
        """End every open keep-alive connection so its thread finishes."""
        self.stopping = True
        with self.connections_lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):  # the client may have closed it already
                    connection.shutdown(socket.SHUT_RDWR)


class SandboxHandler(BaseHTTPRequestHandler):
    """One connection: answers Metrilo's paths under /v2 and the sandbox's under /_sandbox."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes
    server: SandboxHTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a benchmark sends thousands of requests; /_sandbox/summary counts them."""

    def do_GET(self) -> None:
        self._guarded(self._get)

    def do_POST(self) -> None:
        self._guarded(self._post)

    def do_PUT(self) -> None:
        self._guarded(self._not_allowed)

    do_DELETE = do_PATCH = do_PUT

    def _guarded(self, handle: Any) -> None:
        try:
            handle()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            self.close_connection = True
            if self.server.stopping:
                return  # the store closed under an in-flight request: nobody is listening
            log.exception("sandbox: unexpected error answering %s %s", self.command, self.path)
            with contextlib.suppress(OSError):
                self._answer(refusal(500, "sandbox internal error (see its log)"))

    # --- GET -------------------------------------------------------------------------------

    def _get(self) -> None:
        sandbox = self.server.sandbox
        url = urlsplit(self.path)
        if url.path in ("/", "/_sandbox", "/_sandbox/"):
            page = control.render_page(sandbox.store, sandbox.faults, sandbox.url)
            self._send(200, "text/html; charset=utf-8", page)
            return
        answer = control.answer_get(url.path, url.query, sandbox.store, sandbox.faults)
        if answer is None and url.path.removeprefix("/v2/") in OPERATIONS:
            answer = refusal(405, "Metrilo paths accept POST only")
            answer.headers["Allow"] = "POST"
        self._answer(answer or refusal(404, f"no such sandbox page {url.path!r}"))

    def _not_allowed(self) -> None:
        self._discard(self._content_length() or 0)
        self._answer(refusal(405, f"{self.command} is not supported; Metrilo paths take POST"))

    # --- POST ------------------------------------------------------------------------------

    def _post(self) -> None:
        sandbox = self.server.sandbox
        url = urlsplit(self.path)
        length = self._content_length()
        if length is None:
            return
        if url.path.startswith("/_sandbox/"):
            body = self._read(length, limit=MAX_BODY)
            if body is not None:
                answer = control.answer_post(url.path, body, sandbox.store, sandbox.faults)
                self._answer(answer or refusal(404, f"no such sandbox endpoint {url.path!r}"))
            return
        path = url.path.removeprefix("/v2/") if url.path.startswith("/v2/") else url.path
        if path not in OPERATIONS:
            self._refuse(url.path, not_found(url.path), length)
        elif length > MAX_BODY:
            self._refuse(path, too_large(length), length)
        else:
            self._contract_post(path, self.rfile.read(length))

    def _contract_post(self, path: str, body: bytes) -> None:
        sandbox = self.server.sandbox
        decision = sandbox.faults.decide(path)
        if decision.delay:
            time.sleep(decision.delay)
        if decision.fault is Fault.DROP:
            sandbox.store.count_request(path, "dropped")
            self.close_connection = True  # the socket closes with no answer written
            return
        if decision.fault is Fault.THROTTLE:
            retry_after = str(sandbox.faults.retry_after)
            answer = refusal(429, "rate limited (injected fault)", retry_after=retry_after)
            answer.headers["Retry-After"] = retry_after
        elif decision.fault is Fault.ERROR:
            answer = refusal(decision.status, "server trouble (injected fault)")
        else:
            answer = self._checked_and_stored(path, body)
        sandbox.store.count_request(path, answer.status)
        self._answer(answer)

    def _checked_and_stored(self, path: str, body: bytes) -> Answer:
        sandbox = self.server.sandbox
        result = check_request(
            path, self.headers.get("X-Digest"), body, token=sandbox.token, secret=sandbox.secret
        )
        if isinstance(result, Accepted):
            sandbox.store.apply(path, result.items)
            return Answer(200, {"status": "ok", "items": len(result.items)})
        return result

    def _refuse(self, counted_path: str, answer: Answer, length: int) -> None:
        self.server.sandbox.store.count_request(counted_path, answer.status)
        self._discard(length)
        self._answer(answer)

    # --- bodies and answers ----------------------------------------------------------------

    def _content_length(self) -> int | None:
        """The declared body length; None (after answering) when it is absent or bad."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._answer(refusal(411, "send a Content-Length, not a chunked body"))
            return None
        raw = self.headers.get("Content-Length", "0")
        if not raw.isdigit():
            self.close_connection = True
            self._answer(refusal(400, f"Content-Length {raw[:20]!r} is not a whole number"))
            return None
        return int(raw)

    def _read(self, length: int, *, limit: int) -> bytes | None:
        if length > limit:
            self._discard(length)
            self._answer(too_large(length))
            return None
        return self.rfile.read(length)

    def _discard(self, length: int) -> None:
        """Read and drop a body we refuse, so the connection can carry the next request."""
        if length > DRAIN_LIMIT:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    def _answer(self, answer: Answer) -> None:
        body = json.dumps(answer.body, ensure_ascii=False).encode("utf-8")
        self._send(answer.status, "application/json", body, answer.headers)

    def _send(self, status: int, content_type: str, body: bytes,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
