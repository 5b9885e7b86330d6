"""The daemon's optional HTTP endpoint: GET /healthz (JSON) and GET /metrics (Prometheus)."""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cdc_sync.daemon.health import Health
from cdc_sync.daemon.metrics import Metrics
from cdc_sync.errors import EndpointError

log = logging.getLogger(__name__)

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], health: Health, metrics: Metrics) -> None:
        self.health = health
        self.metrics = metrics
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "cdc-sync"
    sys_version = ""

    def do_GET(self) -> None:  # the name http.server looks for
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            status, body = self.server.health.check()
            self._send(status, "application/json", json.dumps(body).encode())
        elif path == "/metrics":
            self._send(200, PROMETHEUS_TYPE, self.server.metrics.render().encode())
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # http.server's signature
        log.debug("health endpoint: " + format, *args)


class Endpoint:
    """Serves /healthz and /metrics from a background thread until `stop`."""

    def __init__(self, host: str, port: int, health: Health, metrics: Metrics) -> None:
        try:
            self._server = _Server((host, port), health, metrics)
        except OSError as exc:
            raise EndpointError(
                f"health endpoint: cannot listen on {host}:{port} ({exc.strerror or exc}); fix: "
                "choose another CDC_SYNC_HTTP_PORT / --http-port, or stop what is using it"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
            name="cdc-sync-health", daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}"

    def start(self) -> Endpoint:
        self._thread.start()
        log.info("health endpoint at %s/healthz and %s/metrics", self.url, self.url)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
