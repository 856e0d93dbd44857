"""A loopback HTTP server that answers like Unifonic's SMS REST API, for provider and delivery tests.

    with FakeUnifonic() as fake:
        provider = UnifonicProvider(app_sid=fake.app_sid, sender_id="AgdarClinic", base_url=fake.base_url)

What it serves (form-encoded POSTs, JSON replies as in Unifonic's documentation):

- ``POST /rest/SMS/messages`` (AppSid, SenderID, Recipient, Body, CorrelationID, MessageType,
  statusCallback) -> ``{"success": "true", "message": "", "errorCode": "ER-00", "data":
  {"MessageID": n, "CorrelationID": ..., "Status": "Queued", "NumberOfUnits": n, "Cost": x,
  "CurrencyCode": "SAR", ...}}``. ``success`` is the string "true" unless ``boolean_success``.
  A wrong AppSid is HTTP 401.
- ``POST /rest/SMS/Messages/GetMessagesDetails`` (AppSid, MessageID or CorrelationID) ->
  ``data.messages`` with the stored message and its current status, or an empty list.

Each send takes one ``Outcome``: from the FIFO ``script(...)`` queue, else the default (success).
Outcomes: success (optionally with latency), ``er(code)`` (HTTP 200, success "false", the ER
code), ``http(status)`` (429/401/402/403/409/410/480/500 with a Unifonic-style body), ``slow``,
``hang`` (nothing stored, no answer), ``drop`` (connection aborted, nothing stored), and the
ambiguous ones where the message IS stored first: ``accept_then_hang``, ``accept_then_error``
(HTTP 500) and ``accept_then_drop``.

Every request is recorded (``RecordedRequest``: endpoint, params, monotonic and wall receive
time, outcome, HTTP status, MessageID). ``advance`` changes a stored message's status;
``send_delivery_report`` POSTs a DLR (MessageID, DLR, Recipient, TimeCreated, DLRTimestamp) to
the message's statusCallback or a given URL, unsigned, as Unifonic does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx

from app.segments import count_segments
from tests.peers._threaded import ThreadedASGIServer

DEFAULT_APP_SID = "UnifonicTestAppSid0123456789"
SEND_PATH = "/rest/SMS/messages"
LOOKUP_PATH = "/rest/SMS/Messages/GetMessagesDetails"
UNIT_COST = Decimal("0.0450")

ER_MESSAGES: dict[str, str] = {
    "ER-01": "Insufficient balance",
    "ER-02": "Invalid recipient number",
    "ER-03": "Recipient number is too long",
    "ER-04": "Recipient number is too short",
    "ER-05": "No route available for the destination",
    "ER-07": "Message content is filtered",
    "ER-08": "Sender ID is not registered",
    "ER-09": "Duplicate message",
}
HTTP_MESSAGES: dict[int, str] = {
    401: "Unauthorized: invalid AppSid",
    402: "Payment required",
    403: "Forbidden",
    409: "Duplicate request",
    410: "Invalid recipient format",
    429: "Too many requests",
    480: "Sender ID not allowed",
    500: "Internal server error",
    503: "Service unavailable",
}

OutcomeKind = Literal["success", "er", "http", "hang", "drop", "accept_then_hang", "accept_then_error",
                      "accept_then_drop"]
STORES_MESSAGE = frozenset({"success", "accept_then_hang", "accept_then_error", "accept_then_drop"})


@dataclass(frozen=True)
class Outcome:
    """What the fake does with one send request."""

    kind: OutcomeKind = "success"
    code: str | None = None  # ER-xx for "er" (and optionally with "http")
    http_status: int = 200
    latency_ms: float = 0.0
    hang_s: float | None = None  # None = the server's hang_s
    boolean_success: bool | None = None  # None = the server's setting
    retry_after: str | None = None  # Retry-After header with a 429

    @classmethod
    def success(cls, *, latency_ms: float = 0.0, boolean_success: bool | None = None) -> Outcome:
        return cls("success", latency_ms=latency_ms, boolean_success=boolean_success)

    @classmethod
    def slow(cls, latency_ms: float) -> Outcome:
        """Success, answered after `latency_ms`."""
        return cls("success", latency_ms=latency_ms)

    @classmethod
    def er(cls, code: str, *, http_status: int = 200) -> Outcome:
        """Not accepted: success "false" with Unifonic's ER code."""
        return cls("er", code=code, http_status=http_status)

    @classmethod
    def http(cls, status: int, *, code: str | None = None, retry_after: str | None = None) -> Outcome:
        """Not accepted: HTTP `status` with a Unifonic-style error body."""
        return cls("http", code=code, http_status=status, retry_after=retry_after)

    @classmethod
    def hang(cls, hang_s: float | None = None) -> Outcome:
        """Nothing stored; no answer for `hang_s` seconds (the client times out)."""
        return cls("hang", hang_s=hang_s)

    @classmethod
    def drop(cls) -> Outcome:
        """Nothing stored; the connection is aborted without an answer."""
        return cls("drop")

    @classmethod
    def accept_then_hang(cls, hang_s: float | None = None) -> Outcome:
        """The message IS stored, then no answer for `hang_s` seconds."""
        return cls("accept_then_hang", hang_s=hang_s)

    @classmethod
    def accept_then_error(cls, http_status: int = 500) -> Outcome:
        """The message IS stored, then an HTTP 5xx answer."""
        return cls("accept_then_error", http_status=http_status)

    @classmethod
    def accept_then_drop(cls) -> Outcome:
        """The message IS stored, then the connection is aborted."""
        return cls("accept_then_drop")


@dataclass
class RecordedRequest:
    endpoint: str  # "send", "lookup" or "other"
    path: str
    params: dict[str, str]
    received_monotonic: float
    received_wall: float
    outcome: str | None = None
    http_status: int | None = None  # None when no answer was sent (hang, drop)
    message_id: str | None = None


@dataclass
class StoredMessage:
    message_id: str
    correlation_id: str
    recipient: str
    body: str
    sender_id: str
    message_type: str
    status_callback: str | None
    units: int
    cost: Decimal
    created: dt.datetime
    status: str = "Sent"
    dlr_timestamp: dt.datetime | None = None

    def record(self) -> dict[str, Any]:
        return {
            "MessageID": int(self.message_id), "CorrelationID": self.correlation_id, "Recipient": self.recipient,
            "Body": self.body, "SenderID": self.sender_id, "Status": self.status, "NumberOfUnits": self.units,
            "Cost": float(self.cost), "CurrencyCode": "SAR", "DateCreated": _fmt(self.created),
            "MessageType": self.message_type,
        }


def _fmt(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class _State:
    app_sid: str
    hang_s: float
    boolean_success: bool = False
    latency_ms: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[RecordedRequest] = field(default_factory=list)
    queue: deque[Outcome] = field(default_factory=deque)
    default: Outcome = field(default_factory=Outcome)
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    by_correlation: dict[str, str] = field(default_factory=dict)
    ids: itertools.count = field(default_factory=lambda: itertools.count(3_000_000_000_001))

    def next_outcome(self) -> Outcome:
        with self.lock:
            return self.queue.popleft() if self.queue else self.default

    def store(self, params: Mapping[str, str]) -> StoredMessage:
        body = params.get("Body", "")
        units = max(count_segments(body).segments, 1)
        with self.lock:
            message = StoredMessage(
                message_id=str(next(self.ids)), correlation_id=params.get("CorrelationID", ""),
                recipient=params.get("Recipient", ""), body=body, sender_id=params.get("SenderID", ""),
                message_type=params.get("MessageType", "3"), status_callback=params.get("statusCallback") or None,
                units=units, cost=UNIT_COST * units, created=_now(),
            )
            self.messages[message.message_id] = message
            if message.correlation_id:
                self.by_correlation[message.correlation_id] = message.message_id
            return message

    def find(self, message_id: str | None, correlation_id: str | None) -> StoredMessage | None:
        with self.lock:
            if message_id:
                return self.messages.get(message_id)
            if correlation_id and correlation_id in self.by_correlation:
                return self.messages[self.by_correlation[correlation_id]]
            return None


async def _read_body(receive: Callable[[], Any]) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond(send: Callable[..., Any], status: int, payload: Any,
                   headers: Mapping[str, str] | None = None) -> None:
    body = json.dumps(payload).encode("utf-8")
    raw = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _abort_connection(send: Callable[..., Any]) -> bool:
    """Abort the TCP connection under this request without an answer (uvicorn h11 internals)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return False
    transport.abort()
    for _ in range(3):
        await asyncio.sleep(0)
    return True


def _error_body(message: str, code: str | None, *, boolean: bool) -> dict[str, Any]:
    return {"success": False if boolean else "false", "message": message, "errorCode": code or "", "data": None}


class FakeUnifonicApp:
    """The ASGI application behind FakeUnifonic."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self._stop_event: asyncio.Event | None = None
        self._stop_requested = False

    def request_stop(self) -> None:
        """Wake every hanging request (call on the server loop)."""
        self._stop_requested = True
        if self._stop_event is not None:
            self._stop_event.set()

    async def _hang(self, seconds: float) -> bool:
        if self._stop_requested:
            return True
        if self._stop_event is None:
            self._stop_event = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), seconds)
        return self._stop_requested

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        received = time.monotonic(), time.time()
        body = await _read_body(receive)
        params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)) if body else {}
        path: str = scope["path"]
        endpoint = {SEND_PATH.lower(): "send", LOOKUP_PATH.lower(): "lookup"}.get(path.rstrip("/").lower(), "other")
        rec = RecordedRequest(endpoint, path, params, *received)
        with self.state.lock:
            self.state.requests.append(rec)
        if scope["method"] != "POST" or endpoint == "other":
            rec.http_status = 404
            await _respond(send, 404, {"success": "false", "message": "Not found", "errorCode": ""})
            return
        if params.get("AppSid") != self.state.app_sid:
            rec.http_status, rec.outcome = 401, "auth"
            await _respond(send, 401, _error_body(HTTP_MESSAGES[401], None, boolean=self.state.boolean_success))
            return
        if endpoint == "lookup":
            await self._lookup(rec, params, send)
        else:
            await self._send(rec, params, send)

    async def _lookup(self, rec: RecordedRequest, params: Mapping[str, str], send: Callable[..., Any]) -> None:
        found = self.state.find(params.get("MessageID"), params.get("CorrelationID"))
        records = [found.record()] if found else []
        rec.http_status, rec.outcome = 200, "lookup"
        rec.message_id = found.message_id if found else None
        success: Any = True if self.state.boolean_success else "true"
        await _respond(send, 200, {"success": success, "message": "", "errorCode": "ER-00",
                                   "data": {"TotalTextMessages": len(records), "Page": 1, "messages": records,
                                            "CurrencyCode": "SAR"}})

    async def _send(self, rec: RecordedRequest, params: Mapping[str, str], send: Callable[..., Any]) -> None:
        state = self.state
        outcome = state.next_outcome()
        rec.outcome = outcome.kind
        boolean = state.boolean_success if outcome.boolean_success is None else outcome.boolean_success
        latency = outcome.latency_ms or state.latency_ms
        if latency:
            await asyncio.sleep(latency / 1000)
        kind = outcome.kind
        if kind == "er":
            code = outcome.code or "ER-02"
            rec.http_status = outcome.http_status
            payload = _error_body(ER_MESSAGES.get(code, "Error"), code, boolean=boolean)
            await _respond(send, outcome.http_status, payload)
            return
        if kind == "http":
            status = outcome.http_status
            rec.http_status = status
            headers = {"Retry-After": outcome.retry_after} if outcome.retry_after else None
            await _respond(send, status, _error_body(HTTP_MESSAGES.get(status, "Error"), outcome.code, boolean=boolean),
                           headers)
            return
        message = state.store(params) if kind in STORES_MESSAGE else None
        rec.message_id = message.message_id if message else None
        hang_s = outcome.hang_s if outcome.hang_s is not None else state.hang_s
        if kind in ("drop", "accept_then_drop"):
            if await _abort_connection(send):
                return
            kind = "accept_then_error"  # could not drop: answer 500 instead
        if kind in ("hang", "accept_then_hang"):
            if await self._hang(hang_s) or kind == "hang":
                return  # the client has long given up (or the server is stopping)
        if kind == "accept_then_error":
            rec.http_status = outcome.http_status if outcome.http_status >= 500 else 500
            await _respond(send, rec.http_status, _error_body(HTTP_MESSAGES.get(rec.http_status, "Error"), None,
                                                              boolean=boolean))
            return
        assert message is not None
        rec.http_status = 200
        await _respond(send, 200, {
            "success": boolean or "true", "message": "", "errorCode": "ER-00",
            "data": {
                "MessageID": int(message.message_id), "CorrelationID": message.correlation_id,
                "Status": "Queued", "NumberOfUnits": message.units, "Cost": float(message.cost),
                "Balance": 100.0, "Recipient": int(message.recipient) if message.recipient.isdigit() else
                message.recipient, "TimeCreated": _fmt(message.created), "CurrencyCode": "SAR",
            },
        })


class FakeUnifonic:
    """A loopback Unifonic on ThreadedASGIServer: ``with FakeUnifonic() as fake: fake.base_url``."""

    def __init__(self, app_sid: str = DEFAULT_APP_SID, *, boolean_success: bool = False, hang_s: float = 10.0,
                 latency_ms: float = 0.0, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = _State(app_sid=app_sid, hang_s=hang_s, boolean_success=boolean_success, latency_ms=latency_ms)
        self.app = FakeUnifonicApp(self._state)
        self._server = ThreadedASGIServer(self.app, host, port)
        self._defaults = (boolean_success, latency_ms)

    def start(self) -> FakeUnifonic:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.call_soon(self.app.request_stop)
        self._server.stop()

    def __enter__(self) -> FakeUnifonic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def app_sid(self) -> str:
        return self._state.app_sid

    # -- scripting ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget requests, messages and scripts; back to the constructor's defaults."""
        with self._state.lock:
            self._state.requests.clear()
            self._state.queue.clear()
            self._state.messages.clear()
            self._state.by_correlation.clear()
            self._state.default = Outcome()
            self._state.boolean_success, self._state.latency_ms = self._defaults

    def script(self, *outcomes: Outcome) -> None:
        """Queue outcomes for the next send requests (FIFO)."""
        with self._state.lock:
            self._state.queue.extend(outcomes)

    def set_default(self, outcome: Outcome) -> None:
        with self._state.lock:
            self._state.default = outcome

    def set_boolean_success(self, value: bool) -> None:
        """Answer ``success`` as a JSON boolean (True) or as the string "true"/"false" (False)."""
        with self._state.lock:
            self._state.boolean_success = value

    # -- inspection ---------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def sends(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.endpoint == "send"]

    @property
    def lookups(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.endpoint == "lookup"]

    @property
    def messages(self) -> list[StoredMessage]:
        with self._state.lock:
            return list(self._state.messages.values())

    def message(self, message_id: str | None = None, *, correlation_id: str | None = None) -> StoredMessage | None:
        return self._state.find(message_id, correlation_id)

    def advance(self, message_id: str, status: str) -> StoredMessage:
        """Set a stored message's status (e.g. "Delivered", "Undeliverable")."""
        message = self._state.find(message_id, None)
        if message is None:
            raise KeyError(message_id)
        with self._state.lock:
            message.status = status
            message.dlr_timestamp = _now()
        return message

    def delivery_report_params(self, message_id: str, dlr: str = "Delivered") -> dict[str, str]:
        """The form Unifonic POSTs for a delivery report (and advances the stored status)."""
        message = self.advance(message_id, dlr)
        assert message.dlr_timestamp is not None
        return {"MessageID": message.message_id, "DLR": dlr, "Recipient": message.recipient,
                "TimeCreated": _fmt(message.created), "DLRTimestamp": _fmt(message.dlr_timestamp)}

    def send_delivery_report(self, message_id: str, dlr: str = "Delivered", url: str | None = None,
                             *, timeout: float = 5.0) -> httpx.Response:
        """POST the delivery report to the message's statusCallback (or `url`), unsigned."""
        message = self._state.find(message_id, None)
        target = url or (message.status_callback if message else None)
        if not target:
            raise ValueError("no URL: the message had no statusCallback and none was given")
        return httpx.post(target, data=self.delivery_report_params(message_id, dlr), timeout=timeout)
