"""Run an ASGI app under uvicorn on loopback in a daemon thread with its own event loop.

Shared by the fake Twilio server and the webhook receiver. The listening socket is bound
before the thread starts (port 0 means "any free port"), so `port` is known immediately and
there is no bind race between picking a port and using it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

ASGIApp = Callable[..., Any]


def bind_loopback(host: str = "127.0.0.1", port: int = 0, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on host:port (port 0 = a free port chosen by the kernel)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this: without it, a response written as headers then body waits
    # for the client's delayed ACK (40 ms a request on Linux).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


class ThreadedASGIServer:
    """uvicorn serving `app` on host:port from a background thread; `start()` returns once it accepts."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self._sock = bind_loopback(host, port)
        self.port: int = self._sock.getsockname()[1]
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        """`http://host:port` with no trailing slash."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; raise if the server is not accepting within `timeout` seconds."""
        config = uvicorn.Config(
            self.app,
            http="h11",
            interface="asgi3",
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=2,
            backlog=2048,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"asgi-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None:
                raise RuntimeError(f"server on port {self.port} failed to start") from self._error
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start within {timeout}s")
            time.sleep(0.002)

    def _run(self) -> None:
        assert self._server is not None
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def call_soon(self, fn: Callable[[], Any]) -> None:
        """Schedule `fn()` on the server's event loop (thread-safe); a no-op once stopped."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit, wait for the thread, release the port. Idempotent."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with contextlib.suppress(OSError):
            self._sock.close()
