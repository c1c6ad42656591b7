"""Serving a sandbox: in a background thread for tests and the demo, or in the foreground for a user."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from erphub.sandbox.faults import install_log_filter

HOST = "127.0.0.1"


def _bind_free_socket(port: int = 0) -> socket.socket:
    """The listening socket, with TCP_NODELAY: Linux hands it down to every accepted connection
    (tcp(7)), so a small response is sent at once instead of waiting ~40 ms for the client's
    delayed ACK (Nagle's algorithm), which would make every sandbox request look that slow."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((HOST, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class SandboxServer:
    """Serves an ASGI app with uvicorn on 127.0.0.1 and a free port, in a daemon thread.

    with SandboxServer(app) as server:
        httpx.get(server.base_url + "/...")
    """

    def __init__(self, app: Any, *, port: int = 0, startup_timeout_s: float = 10.0) -> None:
        # Accept a SandboxApp (unwrap to its fault-injecting app) or any ASGI app as it is: middlewares
        # also carry an `.app` attribute, and unwrapping those would silently drop faults and logging.
        self.app = app.app if hasattr(app, "credentials") and hasattr(app, "faults") else app
        self._port = port
        self._startup_timeout_s = startup_timeout_s
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("sandbox server is not running")
        return int(self._sock.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> SandboxServer:
        install_log_filter()
        self._sock = _bind_free_socket(self._port)
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        # uvicorn installs no signal handlers off the main thread, so Ctrl-C still reaches pytest.
        sock = self._sock
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("sandbox server failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._server = None
        self._thread = None
        self._sock = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def run_foreground(sandbox: Any, port: int = 0, *, echo: Any = print) -> None:
    """Serve one sandbox until Ctrl-C, after printing its base URL and demo credentials."""
    install_log_filter()
    sock = _bind_free_socket(port)
    base_url = f"http://{HOST}:{sock.getsockname()[1]}"
    echo(f"{sandbox.name} sandbox: {sandbox.description}")
    echo(f"base URL: {base_url}")
    for key, value in sandbox.credentials.items():
        echo(f"  {key}: {value}")
    echo(f"fault control: POST {base_url}/__sandbox__/faults")
    echo(f"request log:   GET {base_url}/__sandbox__/requests")
    config = uvicorn.Config(sandbox.app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
