"""Where the benchmark sends records, each in a process of its own (it gets its own core).

`python -m bench.sinks sandbox` runs cdc-sync's strict sandbox (checks every record, stores
it in SQLite with Metrilo's merge rules); `python -m bench.sinks minimal` runs a sink that
reads the body and answers 200, nothing else, to show what the engine does when the receiver
costs nothing. `--latency` adds a fixed delay before every answer, standing in for the round
trip to Metrilo over the internet. Each prints `listening <url>` and serves until stdin closes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.proc import ROOT, SECRET, TOKEN, child_env
from cdc_sync.sandbox import Sandbox

_OK = b'{"status":"ok"}'


class MinimalHandler(BaseHTTPRequestHandler):
    """Reads the body, waits `latency`, answers 200 with a keep-alive connection."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    latency = 0.0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.latency:
            time.sleep(self.latency)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(_OK)))
        self.end_headers()
        self.wfile.write(_OK)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def _serve_minimal(latency: float) -> None:
    handler = type("Handler", (MinimalHandler,), {"latency": latency})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"listening http://127.0.0.1:{server.server_address[1]}/v2", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.shutdown()


def _serve_sandbox(latency: float) -> None:
    with Sandbox(token=TOKEN, secret=SECRET) as sandbox:
        if latency:
            sandbox.faults.update({"delay_rate": 1.0, "delay": latency})
        print(f"listening {sandbox.url}", flush=True)
        sys.stdin.read()


@contextmanager
def running_sink(kind: str, latency: float = 0.0) -> Iterator[str]:
    """Start a sink subprocess; yields its /v2 URL; stops it on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.sinks", kind, "--latency", str(latency)],
        cwd=ROOT, env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        line = process.stdout.readline().strip()
        if not line.startswith("listening "):
            raise RuntimeError(f"the {kind} sink did not start (it said {line!r})")
        yield line.removeprefix("listening ")
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=("sandbox", "minimal"))
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    (_serve_sandbox if args.kind == "sandbox" else _serve_minimal)(args.latency)


if __name__ == "__main__":
    main()
