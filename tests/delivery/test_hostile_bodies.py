"""The callback service refuses an oversized body while reading it, on every endpoint.

Over real HTTP (uvicorn on loopback, raw sockets): a declared Content-Length of 1 GB is answered
413 before any of it is read, and a chunked body streamed lazily (200 MB if the server kept
reading) is answered 413 once it passes the limit, with the connection closed. The memory the
whole process allocates meanwhile (server and client share it) is measured with tracemalloc.
"""

from __future__ import annotations

import select
import socket
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import Engine

from tests.peers._threaded import ThreadedASGIServer
from worker.webhooks import MAX_BODY_BYTES, create_app

DLR_TOKEN = "s3cret-clinic-token"
ENDPOINTS = ["/twilio/status?mid={mid}", "/twilio/inbound", f"/unifonic/dlr/{DLR_TOKEN}", "/unifonic/dlr/unknown"]
STREAM_BYTES = 200 * 1024 * 1024
CHUNK = b"a" * (64 * 1024)  # one chunk object sent again and again: the client holds 64 KB
MEMORY_BUDGET = 8 * 1024 * 1024


@pytest.fixture
def service(engine: Engine, make_runtime, fake_twilio) -> Iterator[ThreadedASGIServer]:
    holder = {}
    server = ThreadedASGIServer(create_app(lambda: holder["runtime"]))
    holder["runtime"], _queue = make_runtime(fake_twilio, public_base_url=server.base_url,
                                             unifonic_callback_token=DLR_TOKEN)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _head(server: ThreadedASGIServer, path: str, header: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: bm90LXNpZ25lZA==\r\n"
            f"{header}\r\n\r\n").encode()


def _read_response(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            part = sock.recv(65536)
            if not part:
                break
            data += part
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def _status(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])


def _send_declared(server: ThreadedASGIServer, path: str) -> tuple[bytes, int]:
    """Declare 1 GB, send the first 64 KB, then wait for the answer."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(_head(server, path, f"Content-Length: {1024 ** 3}") + CHUNK)
        return _read_response(sock), len(CHUNK)


def _send_chunked(server: ThreadedASGIServer, path: str) -> tuple[bytes, int]:
    """Stream up to 200 MB chunked, generated as it goes; stop as soon as the server answers."""
    sent = 0
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(_head(server, path, "Transfer-Encoding: chunked"))
        frame = f"{len(CHUNK):x}\r\n".encode() + CHUNK + b"\r\n"
        try:
            while sent < STREAM_BYTES:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:  # the answer (or the close) came: a real client stops sending here
                    break
                sock.sendall(frame)
                sent += len(CHUNK)
            else:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        return _read_response(sock), sent


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("send", [_send_declared, _send_chunked], ids=["declared-1GB", "chunked-200MB"])
def test_an_oversized_body_is_refused_while_reading_with_little_memory(service, path, send) -> None:
    path = path.format(mid=uuid.uuid4())
    tracemalloc.start()
    try:
        started = time.monotonic()
        response, sent = send(service, path)
        elapsed = time.monotonic() - started
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # a DLR address that is no clinic's may be refused (403) before 64 KB of its body has arrived
    expected = {403, 413} if path.endswith("/unknown") and send is _send_chunked else {413}
    assert _status(response) in expected
    assert b"connection: close" in response.lower()
    assert elapsed < 5, f"refused after {elapsed:.2f} s"
    assert peak < MEMORY_BUDGET, f"{peak / 1e6:.1f} MB allocated while refusing"
    assert sent < 32 * 1024 * 1024, f"the server read {sent / 1e6:.0f} MB before refusing"
    print(f"{send.__name__} {path}: 413 after {elapsed * 1000:.0f} ms, {sent / 1e6:.1f} MB sent, "
          f"peak {peak / 1e6:.2f} MB")


def test_a_chunked_body_within_the_limit_is_read_and_one_byte_over_is_refused(service) -> None:
    url = f"{service.base_url}/unifonic/dlr/{DLR_TOKEN}"
    form = urlencode({"MessageID": "4242", "DLR": "Delivered"}).encode()
    small = httpx.post(url, content=iter([form[:5], form[5:]]),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert small.status_code == 200 and small.headers["X-Outcome"] == "unknown_message"
    just_over = httpx.post(url, content=iter([b"a" * MAX_BODY_BYTES, b"b"]),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert just_over.status_code == 413
    exactly = httpx.post(url, content=b"MessageID=1&DLR=Delivered&x=" + b"a" * (MAX_BODY_BYTES - 28),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert exactly.status_code == 200
