"""Plain ASGI plumbing: read a body, answer JSON, abort a connection, read Basic auth."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any

from tests.peers.fake_twilio.formats import new_sid


def basic_auth(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic`` header, or None."""
    value = headers.get("authorization", "")
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


async def read_body(receive: Callable[[], Any]) -> bytes:
    """The whole request body (what arrived before a disconnect)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def respond(
    send: Callable[[dict[str, Any]], Any], status: int, payload: Any = None, headers: Mapping[str, str] | None = None
) -> None:
    """Answer `status` with `payload` as JSON (None: empty body) and a Twilio-Request-Id."""
    body = b"" if payload is None else json.dumps(payload).encode("utf-8")
    raw_headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"twilio-request-id", new_sid("RQ").encode()),
    ]
    for name, value in (headers or {}).items():
        raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def abort_connection(send: Callable[..., Any]) -> bool:
    """Abort the TCP connection under this request without a response (uvicorn h11 internals)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return False
    transport.abort()
    # let connection_lost run so uvicorn sees the disconnect and does not answer 500 itself
    for _ in range(3):
        await asyncio.sleep(0)
    return True
