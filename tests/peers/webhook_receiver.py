"""A tiny HTTP endpoint on loopback that records webhooks (Twilio status callbacks, inbound SMS).

    with WebhookReceiver(auth_token=token) as hook:
        fake.send_status_callback(sid, "delivered", url=hook.url("/twilio/status"))
        hook.received[0].params, hook.received[0].signature_valid

With `auth_token` set, it checks `X-Twilio-Signature` with `RequestValidator.validate` over the
URL it was called on and answers 403 when invalid (as the real endpoint must); `status_code`
sets the answer for valid requests (e.g. 500 to test Twilio-side retries in a client).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator

from tests.peers._threaded import ThreadedASGIServer


@dataclass
class ReceivedWebhook:
    """One POST the receiver got."""

    url: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    signature_valid: bool | None  # None when the receiver has no auth_token
    received_monotonic: float

    @property
    def signature(self) -> str | None:
        """The X-Twilio-Signature header, if sent."""
        return self.headers.get("x-twilio-signature")


class WebhookReceiver:
    """Records POSTed forms on any path; optional Twilio signature check (403 when invalid)."""

    def __init__(self, auth_token: str | None = None, *, status_code: int = 200, host: str = "127.0.0.1") -> None:
        self.auth_token = auth_token
        self.status_code = status_code
        self._lock = threading.Lock()
        self._received: list[ReceivedWebhook] = []
        self._server = ThreadedASGIServer(self._app, host, 0)

    def start(self) -> WebhookReceiver:
        """Start serving."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._server.stop()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return self._server.base_url

    def url(self, path: str = "/") -> str:
        """Absolute URL of `path` on this receiver."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    @property
    def received(self) -> list[ReceivedWebhook]:
        """Everything received, oldest first (a copy)."""
        with self._lock:
            return list(self._received)

    def clear(self) -> None:
        """Forget what was received."""
        with self._lock:
            self._received.clear()

    async def _app(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"http://{headers.get('host', self._server.host)}{scope['path']}" + (f"?{query}" if query else "")
        params = dict(parse_qsl(b"".join(chunks).decode("utf-8"), keep_blank_values=True))
        valid: bool | None = None
        if self.auth_token is not None:
            valid = RequestValidator(self.auth_token).validate(url, params, headers.get("x-twilio-signature", ""))
        with self._lock:
            self._received.append(ReceivedWebhook(url, scope["path"], params, headers, valid, time.monotonic()))
        status = 403 if valid is False else self.status_code
        body = b"<Response/>"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/xml"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
