"""`Sandbox`: a strict local Metrilo, run in a background thread or in the foreground (CLI)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

from cdc_sync.errors import SandboxError
from cdc_sync.sandbox.faults import Faults
from cdc_sync.sandbox.server import SandboxHTTPServer
from cdc_sync.sandbox.store import SandboxStore


class Sandbox:
    """A local stand-in for Metrilo's v2 API that checks, stores and can misbehave on purpose.

    `with Sandbox(token="t", secret="s") as sandbox:` serves on a free localhost port;
    point the client at `sandbox.url`, then inspect `sandbox.store`. `stop()` (or leaving the
    `with`) closes the server and the store; with `store_path` the records survive in that
    SQLite file for the next Sandbox. A Sandbox starts once.
    """

    def __init__(
        self,
        *,
        token: str,
        secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        store_path: Path | None = None,
    ) -> None:
        self.token = token
        self.secret = secret
        self.host = host
        self.port = port
        self.store = SandboxStore(store_path)
        self.faults = Faults()
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # never the secret
        where = self.base if self._server else f"{self.host}:{self.port} (not started)"
        return f"Sandbox({where}, store={self.store.path or 'temporary'})"

    @property
    def base(self) -> str:
        """"http://127.0.0.1:<port>": where the sandbox's own pages live."""
        if self._server is None:
            raise SandboxError("the sandbox is not started: call start() or use it in a `with`")
        host, port = self._server.server_name, self._server.server_port
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    @property
    def url(self) -> str:
        """"http://127.0.0.1:<port>/v2": the value for METRILO_API_URL."""
        return f"{self.base}/v2"

    def start(self) -> Sandbox:
        """Listen, and serve from a background thread; returns self."""
        server = self._bind()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02},  # how long stop() waits
            name=f"cdc-sync-sandbox-{self.base}", daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve (starting first if needed) until Ctrl-C, then stop; for the CLI."""
        if self._server is None:
            self.start()
        try:
            # join with a timeout so Ctrl-C reaches this (main) thread promptly
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving, end open connections, close the store. Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close(server)

    def reset(self) -> None:
        """Forget every record and counter, and clear every fault."""
        self.store.reset()
        self.faults.clear()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _bind(self) -> SandboxHTTPServer:
        if self._server is not None:
            raise SandboxError(f"the sandbox already serves at {self.base}")
        try:
            self._server = SandboxHTTPServer((self.host, self.port), self)
        except OSError as exc:
            raise SandboxError(
                f"sandbox: cannot listen on {self.host}:{self.port} ({exc.strerror or exc}); "
                "choose another --port, or stop what is using it"
            ) from None
        return self._server

    def _close(self, server: SandboxHTTPServer) -> None:
        self._server = None
        server.close_connections()
        server.server_close()
        self.store.close()
