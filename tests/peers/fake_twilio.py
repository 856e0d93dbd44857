"""A loopback HTTP server that answers like Twilio's REST API, for delivery tests and benchmarks.

The official SDK talks real HTTP to it. Point a client at it like this (twilio 9.x builds every
URL as ``domain.base_url + path`` at request time, see ``twilio.base.domain.Domain.absolute_url``,
so overriding the domain's ``base_url`` is enough; no custom HttpClient is needed)::

    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=5))
    client.edge = client.region = None       # TWILIO_EDGE / TWILIO_REGION would rewrite the host
    client.api.base_url = fake.base_url      # /2010-04-01/... (Messages)
    client.content.base_url = fake.base_url  # /v1/Content/... (approval status)

``make_twilio_client(fake.base_url, ...)`` (or ``fake.client()``) does exactly that, and also
mounts the SDK's own https adapter for ``http://`` so connection pooling matches production.

What it serves (all under HTTP Basic auth ``account_sid:auth_token``; a mismatch is 401/20003):

- ``POST /2010-04-01/Accounts/{AC}/Messages.json`` -> 201 Message resource (``SM`` + 32 hex,
  status ``queued``; ``accepted`` with a MessagingServiceSid; ``scheduled`` with
  ScheduleType=fixed). Missing To/From/Body give Twilio's 21604/21603/21602, a body over 1,600
  characters 21617 (``validate_params=False`` turns these checks off).
- ``GET .../Messages/{SM}.json`` -> the message with its current status (see ``advance``).
- ``GET .../Messages.json?To=&From=&DateSent>=&DateSent<=`` -> a page, newest first.
- ``POST .../Messages/{SM}.json`` (Status=canceled, Body="" redaction), ``DELETE`` -> 204.
- ``GET /v1/Content/{HX}/ApprovalRequests`` -> approval status set by ``set_content_approval``.

Each message-create request takes one ``Outcome``: first from the FIFO ``script(...)`` queue,
else from ``set_responder(fn)``, else from a per-``To`` rule, else the default (success).
Outcomes: success, Twilio error (Twilio's JSON error body, so the SDK raises
``TwilioRestException`` with ``.status`` and ``.code``), extra latency, ``hang``, ``drop``
(connection aborted), and the ambiguous ones where the message IS created first:
``accept_then_hang``, ``accept_then_error`` (e.g. 500/20500), ``accept_then_drop``.

``add_account(sid, token)`` serves a second account (a clinic's own): its requests authenticate with
its token, it sees only its messages, and their callbacks are signed with its token.
``set_lookup_outcome(Outcome.error(...))`` answers every fetch/list with that error (429, 500 ...).

Every API request is recorded (``RecordedRequest``: params, monotonic and wall receive time,
outcome, sid), so a benchmark can check the client stayed under a rate with ``max_rate()``.

Run in-process (``with FakeTwilio(latency_ms=200) as fake: ...``) or as a separate process::

    python -m tests.peers.fake_twilio --port 8765 --latency-ms 200

which prints ``FAKE_TWILIO_URL=http://127.0.0.1:8765`` and exposes a control API that
``FakeTwilioRemote`` wraps: ``GET /_fake/requests``, ``GET /_fake/messages``,
``GET /_fake/stats``, ``POST /_fake/reset``, ``POST /_fake/script``, ``POST /_fake/advance``,
``POST /_fake/callback``, ``POST /_fake/inbound``, ``POST /_fake/content`` (JSON bodies, no auth).

Caveats: HTTP only (no TLS); only the endpoints above; list filtering uses ``date_sent`` and
falls back to ``date_created`` for messages not yet sent; ``drop`` reaches into uvicorn's h11
transport (``send.__self__.transport``) and falls back to a 500/20500 answer if that ever changes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import bisect
import contextlib
import datetime as dt
import email.utils
import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import httpx
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from app.segments import count_segments
from tests.peers._threaded import ThreadedASGIServer, bind_loopback

DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "fa4e" * 8
API_VERSION = "2010-04-01"
ERROR_DOCS = "https://www.twilio.com/docs/errors/{code}"

MESSAGE_STATUSES = frozenset(
    {
        "queued", "sending", "sent", "failed", "delivered", "undelivered", "receiving", "received",
        "accepted", "scheduled", "read", "partially_delivered", "canceled",
    }
)  # fmt: skip
SENT_OR_LATER = frozenset({"sent", "delivered", "undelivered", "read", "failed", "partially_delivered"})

# code -> (HTTP status, message). "{to}" / "{from}" are filled from the request.
KNOWN_ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    20503: (503, "Service unavailable"),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21408: (400, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21606: (400, "The 'From' phone number provided is not a valid message-capable Twilio phone number."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21611: (400, "This 'From' number has exceeded the maximum number of queued messages"),
    21612: (
        400,
        "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: {from} via SMS.",
    ),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
    21635: (400, "'To' number cannot be a landline."),
    21910: (400, "Invalid From and To pair. From and To should be of the same channel"),
    63014: (400, "This message could not be delivered because the recipient has blocked your business."),
    63016: (
        400,
        "Failed to send freeform message because you are outside the allowed window. "
        "If you are using WhatsApp, please use a Message Template.",
    ),
}

OutcomeKind = Literal["success", "error", "hang", "drop", "accept_then_hang", "accept_then_error", "accept_then_drop"]
CREATES_MESSAGE: frozenset[str] = frozenset({"success", "accept_then_hang", "accept_then_error", "accept_then_drop"})
SignatureMode = Literal["valid", "wrong", "none"]


def twilio_error_body(
    code: int, http_status: int | None = None, message: str | None = None, **fill: str
) -> dict[str, Any]:
    """Twilio's JSON error shape: {"code", "message", "more_info", "status"} (status defaults from KNOWN_ERRORS)."""
    default_status, default_message = KNOWN_ERRORS.get(code, (400, f"Error {code}"))
    text = message if message is not None else default_message
    for key, value in fill.items():
        text = text.replace("{" + key + "}", value)
    status = http_status if http_status is not None else default_status
    return {"code": code, "message": text, "more_info": ERROR_DOCS.format(code=code), "status": status}


@dataclass(frozen=True)
class Outcome:
    """What the fake does with one message-create request. Build with the classmethods."""

    kind: OutcomeKind = "success"
    http_status: int | None = None  # error status; None = from KNOWN_ERRORS (errors) or 201 (success)
    code: int | None = None  # Twilio error code for "error" / "accept_then_error"
    message: str | None = None  # error message; None = KNOWN_ERRORS text
    latency_ms: float | None = None  # overrides the server-wide latency for this request
    hang_s: float | None = None  # how long hang/accept_then_hang sleep; None = the server's hang_s
    message_status: str | None = None  # initial status of a created message (default queued/accepted)
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers (e.g. Retry-After)

    @classmethod
    def success(cls, *, status: str | None = None, latency_ms: float | None = None) -> Outcome:
        """201 with the created message (optionally with a given initial status)."""
        return cls("success", message_status=status, latency_ms=latency_ms)

    @classmethod
    def slow(cls, latency_ms: float) -> Outcome:
        """Success after `latency_ms` instead of the server-wide latency."""
        return cls("success", latency_ms=latency_ms)

    @classmethod
    def error(
        cls,
        code: int,
        message: str | None = None,
        http_status: int | None = None,
        *,
        latency_ms: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Outcome:
        """Nothing created; Twilio error `code` with its HTTP status (400/429/500 ...) and JSON body."""
        return cls(
            "error",
            http_status=http_status,
            code=code,
            message=message,
            latency_ms=latency_ms,
            headers=dict(headers or {}),
        )

    @classmethod
    def hang(cls, hang_s: float | None = None) -> Outcome:
        """Nothing created; no answer for `hang_s` (the client times out), then 201 if still connected."""
        return cls("hang", hang_s=hang_s)

    @classmethod
    def drop(cls) -> Outcome:
        """Nothing created; the TCP connection is aborted without a response."""
        return cls("drop")

    @classmethod
    def accept_then_hang(cls, hang_s: float | None = None) -> Outcome:
        """The message IS created, then no answer for `hang_s` seconds (the ambiguous timeout)."""
        return cls("accept_then_hang", hang_s=hang_s)

    @classmethod
    def accept_then_error(
        cls, code: int = 20500, http_status: int | None = None, message: str | None = None
    ) -> Outcome:
        """The message IS created, then an error (default 500/20500) is returned."""
        return cls("accept_then_error", http_status=http_status, code=code, message=message)

    @classmethod
    def accept_then_drop(cls) -> Outcome:
        """The message IS created, then the connection is aborted without a response."""
        return cls("accept_then_drop")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for the standalone control API)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        """Inverse of to_dict; unknown keys are rejected."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown Outcome fields: {sorted(unknown)}")
        return cls(**dict(data))


@dataclass
class RecordedRequest:
    """One API request as the fake received it (never the Authorization header)."""

    method: str
    path: str
    endpoint: str  # messages.create | messages.fetch | messages.list | messages.update | ... | unknown
    params: dict[str, str]  # form body, first value per name
    query: dict[str, str]
    received_monotonic: float  # time.monotonic() (system-wide on Linux: comparable across processes)
    received_wall: float  # time.time()
    account_sid: str | None = None
    auth_ok: bool = False
    outcome: str | None = None  # Outcome.kind, or auth_failed / invalid / not_found
    http_status: int | None = None  # None if no response was sent (drop, hang cut short)
    error_code: int | None = None
    sid: str | None = None  # the message created or addressed
    responded_monotonic: float | None = None
    multi: dict[str, list[str]] = field(default_factory=dict)  # params that occurred more than once

    @property
    def to(self) -> str | None:
        """The To parameter (or None)."""
        return self.params.get("To")

    @property
    def created(self) -> bool:
        """True when this request created a message (whatever the client saw)."""
        return self.endpoint == "messages.create" and self.sid is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecordedRequest:
        """Inverse of to_dict."""
        return cls(**dict(data))


def count_by_to(requests: Iterable[RecordedRequest], *, created_only: bool = False) -> dict[str, int]:
    """Message-create requests per To number (only those that created a message if `created_only`)."""
    counter: Counter[str] = Counter()
    for rec in requests:
        if rec.endpoint == "messages.create" and rec.to is not None and (rec.created or not created_only):
            counter[rec.to] += 1
    return dict(counter)


def max_rate(requests: Iterable[RecordedRequest], window_s: float = 1.0, *, sends_only: bool = True) -> int:
    """Largest number of requests received within any window of `window_s` seconds (half-open)."""
    times = sorted(r.received_monotonic for r in requests if not sends_only or r.endpoint == "messages.create")
    best = 0
    for i, t in enumerate(times):
        j = bisect.bisect_left(times, t + window_s, lo=i)
        best = max(best, j - i)
    return best


@dataclass
class SignedWebhook:
    """A webhook request as Twilio would send it: POST `url`, form `params`, `headers` (signature)."""

    url: str
    params: dict[str, str]
    headers: dict[str, str]

    def post(self, timeout: float = 5.0) -> httpx.Response:
        """Send it over HTTP (synchronously)."""
        with httpx.Client(timeout=timeout) as http:
            return http.post(self.url, data=self.params, headers=self.headers)

    async def apost(self, timeout: float = 5.0) -> httpx.Response:
        """Send it over HTTP from async code."""
        async with httpx.AsyncClient(timeout=timeout) as http:
            return await http.post(self.url, data=self.params, headers=self.headers)


def sign_webhook(
    auth_token: str,
    url: str,
    params: Mapping[str, str],
    *,
    signature: SignatureMode = "valid",
    sign_url: str | None = None,
) -> SignedWebhook:
    """Headers Twilio adds to a webhook: X-Twilio-Signature over (`sign_url` or `url`, params).

    signature="wrong" signs with a different token, "none" omits the header; `sign_url` lets a
    test sign a different URL than the one posted to (a proxy rewriting the public URL).
    """
    clean = {k: str(v) for k, v in params.items() if v is not None}
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "TwilioProxy/1.1",
        "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
    }
    if signature != "none":
        token = auth_token if signature == "valid" else auth_token + "-wrong"
        headers["X-Twilio-Signature"] = RequestValidator(token).compute_signature(sign_url or url, clean)
    return SignedWebhook(url=url, params=clean, headers=headers)


def _rfc2822(moment: dt.datetime) -> str:
    return email.utils.format_datetime(moment)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def _format_price(price: str | float | None) -> str | None:
    if price is None or isinstance(price, str):
        return price
    return f"{price:.5f}"


@dataclass
class _StoredMessage:
    resource: dict[str, Any]
    status_callback: str | None
    content_sid: str | None
    content_variables: str | None
    created_monotonic: float


class _State:
    """Everything the fake remembers; every method takes the lock (server loop vs test thread)."""

    def __init__(
        self, account_sid: str, auth_token: str, latency_ms: float, hang_s: float, validate_params: bool
    ) -> None:
        self.lock = threading.RLock()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.initial_latency_ms = latency_ms
        self.latency_ms = latency_ms
        self.hang_s = hang_s
        self.validate_params = validate_params
        self.requests: list[RecordedRequest] = []
        self.messages: dict[str, _StoredMessage] = {}
        self.queue: deque[Outcome] = deque()
        self.by_to: dict[str, Outcome] = {}
        self.default: Outcome = Outcome.success()
        self.responder: Callable[[dict[str, str]], Outcome | None] | None = None
        self.content: dict[str, dict[str, Any]] = {}
        self.generation = 0  # bumped by reset(): requests still in flight from before must not touch state
        self.accounts: dict[str, str] = {}  # more accounts (SID -> token), e.g. a clinic's own (add_account)
        self.lookup_outcome: Outcome | None = None  # an error answer for every fetch/list (set_lookup_outcome)

    def token_of(self, account_sid: str | None) -> str | None:
        """The auth token of an account the fake serves (None if unknown)."""
        with self.lock:
            return self.auth_token if account_sid == self.account_sid else self.accounts.get(account_sid or "")

    def reset(self) -> None:
        with self.lock:
            self.generation += 1
            self.requests.clear()
            self.messages.clear()
            self.queue.clear()
            self.by_to.clear()
            self.default = Outcome.success()
            self.responder = None
            self.content.clear()
            self.latency_ms = self.initial_latency_ms
            self.accounts.clear()
            self.lookup_outcome = None

    def next_outcome(self, params: dict[str, str]) -> Outcome:
        with self.lock:
            if self.queue:
                return self.queue.popleft()
            responder = self.responder
        if responder is not None:
            outcome = responder(params)
            if outcome is not None:
                return outcome
        with self.lock:
            return self.by_to.get(params.get("To", ""), self.default)

    def create_message(
        self, account_sid: str, params: dict[str, str], multi: dict[str, list[str]], outcome: Outcome
    ) -> _StoredMessage:
        now = _now()
        media = multi.get("MediaUrl") or ([params["MediaUrl"]] if "MediaUrl" in params else [])
        sid = _new_sid("MM" if media else "SM")
        service = params.get("MessagingServiceSid")
        if outcome.message_status:
            status = outcome.message_status
        elif params.get("ScheduleType") == "fixed":
            status = "scheduled"
        else:
            status = "accepted" if service else "queued"
        body = params.get("Body", "")
        uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
        resource: dict[str, Any] = {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": _rfc2822(now),
            "date_sent": None,
            "date_updated": _rfc2822(now),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": params.get("From"),
            "messaging_service_sid": service,
            "num_media": str(len(media)),
            "num_segments": "0" if service else str(count_segments(body).segments),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": status,
            "subresource_uris": {
                "media": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}/Media.json",
                "feedback": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}/Feedback.json",
            },
            "to": params.get("To"),
            "uri": uri,
        }
        stored = _StoredMessage(
            resource=resource,
            status_callback=params.get("StatusCallback"),
            content_sid=params.get("ContentSid"),
            content_variables=params.get("ContentVariables"),
            created_monotonic=time.monotonic(),
        )
        with self.lock:
            self.messages[sid] = stored
        return stored

    def get(self, sid: str) -> _StoredMessage:
        with self.lock:
            try:
                return self.messages[sid]
            except KeyError:
                raise KeyError(f"no message {sid} at the fake") from None

    def snapshot(self, sid: str) -> dict[str, Any]:
        with self.lock:
            return json.loads(json.dumps(self.get(sid).resource))

    def advance(
        self,
        sid: str,
        status: str,
        *,
        error_code: int | None = None,
        error_message: str | None = None,
        price: str | float | None = None,
        price_unit: str | None = None,
    ) -> dict[str, Any]:
        if status not in MESSAGE_STATUSES:
            raise ValueError(f"unknown message status {status!r}")
        now = _now()
        with self.lock:
            res = self.get(sid).resource
            res["status"] = status
            res["date_updated"] = _rfc2822(now)
            if status in SENT_OR_LATER and res["date_sent"] is None:
                res["date_sent"] = _rfc2822(now)
            if error_code is not None:
                res["error_code"] = int(error_code)
                res["error_message"] = error_message
            if price is not None:
                res["price"] = _format_price(price)
            if price_unit is not None:
                res["price_unit"] = price_unit
            return self.snapshot(sid)


def status_callback_params(
    resource: Mapping[str, Any],
    status: str,
    *,
    error_code: int | None = None,
    price: str | float | None = None,
    price_unit: str = "USD",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The form Twilio POSTs to a StatusCallback URL for `resource` reaching `status`.

    Always: MessageSid, SmsSid, AccountSid, MessageStatus, SmsStatus, To, From, ApiVersion;
    ErrorCode only when given (Twilio sends it with failed/undelivered); MessagingServiceSid when
    the message has one; Price/PriceUnit only when `price` is given; RawDlrDoneDate for SMS
    delivered/undelivered; ChannelPrefix for WhatsApp.
    """
    to = str(resource.get("to") or "")
    params: dict[str, str] = {
        "MessageSid": resource["sid"],
        "SmsSid": resource["sid"],
        "AccountSid": resource["account_sid"],
        "MessageStatus": status,
        "SmsStatus": status,
        "To": to,
        "From": str(resource.get("from") or ""),
        "ApiVersion": API_VERSION,
    }
    if resource.get("messaging_service_sid"):
        params["MessagingServiceSid"] = resource["messaging_service_sid"]
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    if price is not None:
        params["Price"] = str(_format_price(price))
        params["PriceUnit"] = price_unit
    if to.startswith("whatsapp:"):
        params["ChannelPrefix"] = "whatsapp"
    elif status in {"delivered", "undelivered"}:
        params["RawDlrDoneDate"] = _now().strftime("%y%m%d%H%M")
    params.update(extra or {})
    return params


def inbound_message_params(
    account_sid: str, from_: str, to: str, body: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The form Twilio POSTs to a number's incoming-message webhook."""
    sid = _new_sid("SM")
    params = {
        "ToCountry": "", "ToState": "", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "", "FromZip": "",
        "SmsSid": sid, "FromState": "", "SmsStatus": "received", "FromCity": "", "Body": body,
        "FromCountry": "", "To": to, "ToZip": "", "NumSegments": str(max(1, count_segments(body).segments)),
        "MessageSid": sid, "AccountSid": account_sid, "From": from_, "ApiVersion": API_VERSION,
    }  # fmt: skip
    if body.strip().upper() in {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}:
        params["OptOutType"] = "STOP"
    elif body.strip().upper() in {"START", "YES", "UNSTOP"}:
        params["OptOutType"] = "START"
    params.update(extra or {})
    return params


# ---------------------------------------------------------------------------------------------
# The ASGI app
# ---------------------------------------------------------------------------------------------

_ACCOUNT = "/" + API_VERSION + "/Accounts/"


def _route(method: str, path: str) -> tuple[str, str | None, str | None]:
    """(endpoint, account_sid, sid) for an API path."""
    if path.startswith(_ACCOUNT):
        rest = path[len(_ACCOUNT) :]
        account, _, tail = rest.partition("/")
        if tail == "Messages.json":
            return ("messages.create" if method == "POST" else "messages.list", account, None)
        if tail.startswith("Messages/") and tail.endswith(".json") and tail.count("/") == 1:
            sid = tail[len("Messages/") : -len(".json")]
            kind = {"GET": "messages.fetch", "POST": "messages.update", "DELETE": "messages.delete"}
            return (kind.get(method, "unknown"), account, sid)
        return ("unknown", account, None)
    if path.startswith("/v1/Content/") and path.endswith("/ApprovalRequests") and method == "GET":
        return ("content.approval", None, path[len("/v1/Content/") : -len("/ApprovalRequests")])
    return ("unknown", None, None)


def _basic_auth(headers: Mapping[str, str]) -> tuple[str, str] | None:
    value = headers.get("authorization", "")
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def _parse_date_filter(value: str, *, end_of_day: bool) -> dt.datetime:
    if "T" in value:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    day = dt.date.fromisoformat(value)
    moment = dt.datetime.combine(day, dt.time.max if end_of_day else dt.time.min)
    return moment.replace(tzinfo=dt.UTC)


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


async def _respond(
    send: Callable[[dict[str, Any]], Any], status: int, payload: Any = None, headers: Mapping[str, str] | None = None
) -> None:
    body = b"" if payload is None else json.dumps(payload).encode("utf-8")
    raw_headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"twilio-request-id", _new_sid("RQ").encode()),
    ]
    for name, value in (headers or {}).items():
        raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def _abort_connection(send: Callable[..., Any]) -> bool:
    """Abort the TCP connection under this request without a response (uvicorn h11 internals)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return False
    transport.abort()
    # let connection_lost run so uvicorn sees the disconnect and does not answer 500 itself
    for _ in range(3):
        await asyncio.sleep(0)
    return True


class FakeTwilioApp:
    """The ASGI application behind FakeTwilio (one per server; holds the shared _State)."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self._stop_event: asyncio.Event | None = None
        self._stop_requested = False

    # -- lifecycle --------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Wake every hanging request (call on the server loop)."""
        self._stop_requested = True
        if self._stop_event is not None:
            self._stop_event.set()

    async def _hang(self, seconds: float) -> bool:
        """Sleep `seconds` or until the server stops; True if it stopped."""
        if self._stop_requested:
            return True
        if self._stop_event is None:
            self._stop_event = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), seconds)
        return self._stop_requested

    # -- ASGI ---------------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        received_monotonic, received_wall = time.monotonic(), time.time()
        body = await _read_body(receive)
        method: str = scope["method"]
        path: str = scope["path"]
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if path.startswith("/_fake/"):
            await self._control(method, path, query, body, send)
            return
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True) if body else []
        params: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in pairs:
            if name in params:
                multi.setdefault(name, [params[name]]).append(value)
            else:
                params[name] = value
        endpoint, account, sid = _route(method, path)
        rec = RecordedRequest(
            method=method, path=path, endpoint=endpoint, params=params, query=query,
            received_monotonic=received_monotonic, received_wall=received_wall,
            account_sid=account, sid=sid, multi=multi,
        )  # fmt: skip
        with self.state.lock:
            self.state.requests.append(rec)
        try:
            await self._api(rec, headers, send)
        finally:
            rec.responded_monotonic = time.monotonic()

    async def _finish(
        self,
        rec: RecordedRequest,
        send: Callable[..., Any],
        status: int,
        payload: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        rec.http_status = status
        if status >= 400 and isinstance(payload, dict):
            rec.error_code = payload.get("code")
        await _respond(send, status, payload, headers)

    async def _api(self, rec: RecordedRequest, headers: Mapping[str, str], send: Callable[..., Any]) -> None:
        state = self.state
        latency = state.latency_ms
        creds = _basic_auth(headers)
        rec.auth_ok = creds is not None and state.token_of(creds[0]) == creds[1]
        if not rec.auth_ok:
            rec.outcome = "auth_failed"
            await asyncio.sleep(latency / 1000)
            await self._finish(
                rec, send, 401, twilio_error_body(20003), {"www-authenticate": 'Basic realm="Twilio API"'}
            )
            return
        if rec.endpoint == "unknown" or (rec.account_sid is not None and creds and rec.account_sid != creds[0]):
            rec.outcome = "not_found"
            await asyncio.sleep(latency / 1000)
            await self._finish(rec, send, 404, twilio_error_body(20404, path=rec.path))
            return
        if rec.endpoint == "messages.create":
            await self._create(rec, send)
            return
        await asyncio.sleep(latency / 1000)
        failing = state.lookup_outcome
        if failing is not None and rec.endpoint in ("messages.fetch", "messages.list"):
            rec.outcome = "error"
            payload = twilio_error_body(failing.code or 20500, failing.http_status, failing.message, path=rec.path)
            await self._finish(rec, send, payload["status"], payload, failing.headers)
            return
        rec.outcome = "success"
        if rec.endpoint == "messages.list":
            await self._finish(rec, send, 200, self._list(rec))
        elif rec.endpoint == "content.approval":
            assert rec.sid is not None
            with state.lock:
                approval = json.loads(json.dumps(state.content.get(rec.sid)))
            if approval is None:
                rec.outcome = "not_found"
                await self._finish(rec, send, 404, twilio_error_body(20404, path=rec.path))
            else:
                await self._finish(rec, send, 200, approval)
        else:
            assert rec.sid is not None
            with state.lock:
                known = rec.sid in state.messages and (
                    state.messages[rec.sid].resource["account_sid"] == rec.account_sid)
            if not known:
                rec.outcome = "not_found"
                await self._finish(rec, send, 404, twilio_error_body(20404, path=rec.path))
            elif rec.endpoint == "messages.fetch":
                await self._finish(rec, send, 200, state.snapshot(rec.sid))
            elif rec.endpoint == "messages.delete":
                with state.lock:
                    state.messages.pop(rec.sid, None)
                await self._finish(rec, send, 204, None)
            else:
                await self._finish(rec, send, 200, self._update(rec))

    def _validate(self, params: Mapping[str, str]) -> int | None:
        if not params.get("To"):
            return 21604
        if not params.get("From") and not params.get("MessagingServiceSid"):
            return 21603
        if not params.get("Body") and not params.get("ContentSid") and not params.get("MediaUrl"):
            return 21602
        if len(params.get("Body", "")) > 1600:
            return 21617
        to_wa = params["To"].startswith("whatsapp:")
        if params.get("From") and params["From"].startswith("whatsapp:") != to_wa:
            return 21910
        return None

    async def _create(self, rec: RecordedRequest, send: Callable[..., Any]) -> None:
        state = self.state
        generation = state.generation
        params = rec.params
        fill = {"to": params.get("To", ""), "from": params.get("From", ""), "path": rec.path}
        invalid = self._validate(params) if state.validate_params else None
        outcome = Outcome.error(invalid) if invalid is not None else state.next_outcome(params)
        rec.outcome = "invalid" if invalid is not None else outcome.kind
        latency = outcome.latency_ms if outcome.latency_ms is not None else state.latency_ms
        if latency:
            await asyncio.sleep(latency / 1000)
        hang_s = outcome.hang_s if outcome.hang_s is not None else state.hang_s
        kind = outcome.kind
        created = False
        if kind in CREATES_MESSAGE:
            created = self._store(rec, outcome, generation)
        if kind in {"drop", "accept_then_drop"}:
            if await _abort_connection(send):
                return
            kind = "accept_then_error" if created else "error"  # could not drop: answer 500 instead
            outcome = Outcome.accept_then_error() if created else Outcome.error(20500)
        if kind in {"hang", "accept_then_hang"} and await self._hang(hang_s):
            await _abort_connection(send)  # the server is stopping
            return
        if state.generation != generation:  # reset() while this request was in flight: the test moved on
            await _abort_connection(send)
            return
        if kind in {"error", "accept_then_error"}:
            code = outcome.code if outcome.code is not None else 20500
            payload = twilio_error_body(code, outcome.http_status, outcome.message, **fill)
            await self._finish(rec, send, payload["status"], payload, outcome.headers)
            return
        if not created:  # a "hang" that outlived its sleep: Twilio finally processed it
            self._store(rec, outcome, generation)
        assert rec.sid is not None
        await self._finish(rec, send, 201, state.snapshot(rec.sid), outcome.headers)

    def _store(self, rec: RecordedRequest, outcome: Outcome, generation: int) -> bool:
        """Create the message unless the state was reset since the request arrived."""
        with self.state.lock:
            if self.state.generation != generation:
                return False
            assert rec.account_sid is not None
            stored = self.state.create_message(rec.account_sid, rec.params, rec.multi, outcome)
            rec.sid = stored.resource["sid"]
            return True

    def _update(self, rec: RecordedRequest) -> dict[str, Any]:
        assert rec.sid is not None
        with self.state.lock:
            res = self.state.get(rec.sid).resource
            if rec.params.get("Status") == "canceled" and res["status"] == "scheduled":
                res["status"] = "canceled"
            if rec.params.get("Body") == "":
                res["body"] = ""
            res["date_updated"] = _rfc2822(_now())
            return self.state.snapshot(rec.sid)

    def _list(self, rec: RecordedRequest) -> dict[str, Any]:
        q = rec.query
        page_size = int(q.get("PageSize", "50"))
        page = int(q.get("Page", "0"))
        bounds: list[tuple[str, dt.datetime]] = []
        if q.get("DateSent"):
            bounds += [
                (">", _parse_date_filter(q["DateSent"], end_of_day=False)),
                ("<", _parse_date_filter(q["DateSent"], end_of_day=True)),
            ]
        if q.get("DateSent>"):
            bounds.append((">", _parse_date_filter(q["DateSent>"], end_of_day=False)))
        if q.get("DateSent<"):
            bounds.append(("<", _parse_date_filter(q["DateSent<"], end_of_day=True)))
        with self.state.lock:
            stored = list(self.state.messages.values())
        matches = []
        for item in reversed(stored):  # newest first
            res = item.resource
            if res["account_sid"] != rec.account_sid:
                continue
            if q.get("To") and res["to"] != q["To"]:
                continue
            if q.get("From") and res["from"] != q["From"]:
                continue
            moment = email.utils.parsedate_to_datetime(res["date_sent"] or res["date_created"])
            if any((op == ">" and moment < b) or (op == "<" and moment > b) for op, b in bounds):
                continue
            matches.append(json.loads(json.dumps(res)))
        chunk = matches[page * page_size : (page + 1) * page_size]
        base = f"/{API_VERSION}/Accounts/{rec.account_sid}/Messages.json"

        def page_uri(n: int) -> str:
            return (
                base
                + "?"
                + urlencode({**{k: v for k, v in q.items() if k != "Page"}, "PageSize": page_size, "Page": n})
            )

        has_next = (page + 1) * page_size < len(matches)
        return {
            "messages": chunk,
            "end": page * page_size + max(len(chunk) - 1, 0),
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if has_next else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "start": page * page_size,
            "uri": page_uri(page),
        }

    # -- control API (standalone mode) -------------------------------------------------------
    async def _control(
        self, method: str, path: str, query: Mapping[str, str], body: bytes, send: Callable[..., Any]
    ) -> None:
        state = self.state
        try:
            data: dict[str, Any] = json.loads(body) if body else {}
            action = (method, path)
            if action == ("GET", "/_fake/requests"):
                since = int(query.get("since", "0"))
                with state.lock:
                    recs = [r.to_dict() for r in state.requests[since:]]
                await _respond(send, 200, {"requests": recs})
            elif action == ("GET", "/_fake/messages"):
                with state.lock:
                    msgs = [{**m.resource, "_status_callback": m.status_callback} for m in state.messages.values()]
                await _respond(send, 200, {"messages": json.loads(json.dumps(msgs))})
            elif action == ("GET", "/_fake/stats"):
                window = float(query.get("window_s", "1.0"))
                with state.lock:
                    recs = list(state.requests)
                    created = len(state.messages)
                await _respond(
                    send,
                    200,
                    {
                        "requests": len(recs),
                        "sends": sum(1 for r in recs if r.endpoint == "messages.create"),
                        "created": created,
                        "max_rate": max_rate(recs, window),
                        "count_by_to": count_by_to(recs),
                        "created_by_to": count_by_to(recs, created_only=True),
                    },
                )
            elif action == ("POST", "/_fake/reset"):
                state.reset()
                await _respond(send, 200, {})
            elif action == ("POST", "/_fake/script"):
                self._apply_script(data)
                await _respond(send, 200, {"queued": len(state.queue)})
            elif action == ("POST", "/_fake/advance"):
                res = state.advance(
                    data["sid"],
                    data["status"],
                    error_code=data.get("error_code"),
                    error_message=data.get("error_message"),
                    price=data.get("price"),
                    price_unit=data.get("price_unit"),
                )
                await _respond(send, 200, res)
            elif action == ("POST", "/_fake/callback"):
                hook = build_status_callback(
                    state,
                    data["sid"],
                    data["status"],
                    error_code=data.get("error_code"),
                    url=data.get("url"),
                    price=data.get("price"),
                    price_unit=data.get("price_unit", "USD"),
                    signature=data.get("signature", "valid"),
                    sign_url=data.get("sign_url"),
                    extra=data.get("extra"),
                    advance=data.get("advance", True),
                )
                response = await hook.apost(timeout=float(data.get("timeout", 10.0)))
                await _respond(send, 200, {"status_code": response.status_code, "params": hook.params})
            elif action == ("POST", "/_fake/inbound"):
                params = inbound_message_params(
                    state.account_sid, data["from"], data["to"], data["body"], data.get("extra")
                )
                hook = sign_webhook(
                    state.auth_token,
                    data["url"],
                    params,
                    signature=data.get("signature", "valid"),
                    sign_url=data.get("sign_url"),
                )
                response = await hook.apost(timeout=float(data.get("timeout", 10.0)))
                await _respond(send, 200, {"status_code": response.status_code, "params": hook.params})
            elif action == ("POST", "/_fake/content"):
                set_content_approval(state, **data)
                await _respond(send, 200, {})
            else:
                await _respond(send, 404, {"error": f"no control endpoint {method} {path}"})
        except (KeyError, ValueError, TypeError, httpx.HTTPError) as exc:
            await _respond(send, 400, {"error": f"{type(exc).__name__}: {exc}"})

    def _apply_script(self, data: Mapping[str, Any]) -> None:
        state = self.state
        with state.lock:
            if not data.get("append", True):
                state.queue.clear()
            state.queue.extend(Outcome.from_dict(o) for o in data.get("queue", []))
            for to, outcome in (data.get("by_to") or {}).items():
                if outcome is None:
                    state.by_to.pop(to, None)
                else:
                    state.by_to[to] = Outcome.from_dict(outcome)
            if "default" in data:
                state.default = Outcome.from_dict(data["default"] or {})
            if "latency_ms" in data:
                state.latency_ms = float(data["latency_ms"])


def build_status_callback(
    state: _State,
    sid: str,
    status: str,
    *,
    error_code: int | None = None,
    url: str | None = None,
    price: str | float | None = None,
    price_unit: str = "USD",
    signature: SignatureMode = "valid",
    sign_url: str | None = None,
    extra: Mapping[str, str] | None = None,
    advance: bool = True,
) -> SignedWebhook:
    """The signed status callback for message `sid` reaching `status` (and, if `advance`, record it)."""
    if advance:
        resource = state.advance(
            sid, status, error_code=error_code, price=price, price_unit=price_unit if price is not None else None
        )
    else:
        resource = state.snapshot(sid)
    target = url or state.get(sid).status_callback
    if not target:
        raise ValueError(f"message {sid} has no StatusCallback and no url was given")
    params = status_callback_params(
        resource, status, error_code=error_code, price=price, price_unit=price_unit, extra=extra
    )
    token = state.token_of(resource["account_sid"]) or state.auth_token  # the account that has the message
    return sign_webhook(token, target, params, signature=signature, sign_url=sign_url)


def set_content_approval(
    state: _State,
    sid: str,
    status: str = "approved",
    *,
    name: str = "template",
    category: str = "UTILITY",
    rejection_reason: str = "",
    content_type: str = "twilio/text",
) -> None:
    """Make GET /v1/Content/{sid}/ApprovalRequests answer with this WhatsApp approval status."""
    with state.lock:
        state.content[sid] = {
            "account_sid": state.account_sid,
            "sid": sid,
            "url": f"https://content.twilio.com/v1/Content/{sid}/ApprovalRequests",
            "whatsapp": {
                "type": "whatsapp", "name": name, "category": category, "content_type": content_type,
                "status": status, "rejection_reason": rejection_reason, "allow_category_change": True,
                "flows": None,
            },
        }  # fmt: skip


def make_twilio_client(
    base_url: str, account_sid: str = DEFAULT_ACCOUNT_SID, auth_token: str = DEFAULT_AUTH_TOKEN, *, timeout: float = 5.0
) -> Client:
    """An official SDK Client whose api/content/messaging domains point at `base_url`, with a timeout."""
    http_client = TwilioHttpClient(timeout=timeout)
    client = Client(account_sid, auth_token, http_client=http_client)
    point_client_at(client, base_url)
    return client


def point_client_at(client: Client, base_url: str) -> Client:
    """Redirect an existing SDK Client to `base_url` (returns it). See the module docstring."""
    client.edge = None
    client.region = None
    base = base_url.rstrip("/")
    client.api.base_url = base
    client.content.base_url = base
    client.messaging.base_url = base
    http_client = client.http_client
    session = getattr(http_client, "session", None)
    if session is not None:  # same pool settings for http:// as the SDK configures for https://
        session.mount("http://", session.get_adapter("https://"))
    return client


# ---------------------------------------------------------------------------------------------
# In-process server
# ---------------------------------------------------------------------------------------------


class FakeTwilio:
    """Fake Twilio REST API served from a background thread on 127.0.0.1 (see module docstring)."""

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        latency_ms: float = 0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        hang_s: float = 30.0,
        validate_params: bool = True,
    ) -> None:
        self._state = _State(account_sid, auth_token, latency_ms, hang_s, validate_params)
        self.app = FakeTwilioApp(self._state)
        self._server = ThreadedASGIServer(self.app, host, port)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FakeTwilio:
        """Start serving (returns self once the port accepts connections)."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Release hanging requests, stop the server, free the port."""
        self._server.call_soon(self.app.request_stop)
        self._server.stop()

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`: the value for `client.api.base_url`."""
        return self._server.base_url

    @property
    def port(self) -> int:
        """The TCP port served."""
        return self._server.port

    @property
    def account_sid(self) -> str:
        """The account SID the fake accepts (Basic auth user and URL segment)."""
        return self._state.account_sid

    @property
    def auth_token(self) -> str:
        """The auth token the fake accepts and signs webhooks with."""
        return self._state.auth_token

    def client(self, timeout: float = 5.0) -> Client:
        """An official SDK Client pointed here, with a read/connect timeout of `timeout` seconds."""
        return make_twilio_client(self.base_url, self.account_sid, self.auth_token, timeout=timeout)

    # -- scripting ----------------------------------------------------------------------------
    @property
    def latency_ms(self) -> float:
        """Delay applied before answering every API request (settable; per-Outcome overrides)."""
        return self._state.latency_ms

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        self._state.latency_ms = float(value)

    def script(self, *outcomes: Outcome) -> None:
        """Queue outcomes for the next message-create requests, in arrival order (FIFO)."""
        with self._state.lock:
            self._state.queue.extend(outcomes)

    def set_responder(self, fn: Callable[[dict[str, str]], Outcome | None] | None) -> None:
        """Decide outcomes with `fn(form params)` once the queue is empty; None falls through."""
        self._state.responder = fn

    def set_outcome_for_to(self, to: str, outcome: Outcome | None) -> None:
        """Every create to `to` gets `outcome` (after queue and responder); None removes the rule."""
        with self._state.lock:
            if outcome is None:
                self._state.by_to.pop(to, None)
            else:
                self._state.by_to[to] = outcome

    def set_default(self, outcome: Outcome) -> None:
        """The outcome when nothing else matched (initially Outcome.success())."""
        self._state.default = outcome

    def set_content_approval(self, sid: str, status: str = "approved", **kwargs: str) -> None:
        """Answer GET /v1/Content/{sid}/ApprovalRequests with this WhatsApp status (name, category, ...)."""
        set_content_approval(self._state, sid, status, **kwargs)

    def add_account(self, account_sid: str, auth_token: str) -> None:
        """Also serve this account (a clinic's own): its messages are its own, its callbacks signed with its token."""
        with self._state.lock:
            self._state.accounts[account_sid] = auth_token

    def set_lookup_outcome(self, outcome: Outcome | None) -> None:
        """Answer every message fetch/list with this error (e.g. Outcome.error(20429)); None: normal answers."""
        self._state.lookup_outcome = outcome

    def reset(self) -> None:
        """Forget requests, messages, scripts, responder, rules, added accounts; latency back to the constructor's."""
        self._state.reset()

    # -- inspection ---------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """Every API request received so far, in arrival order (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def sends(self) -> list[RecordedRequest]:
        """Only the message-create requests."""
        return [r for r in self.requests if r.endpoint == "messages.create"]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every message the fake created (resource JSON as fetch returns it), oldest first."""
        with self._state.lock:
            return [self._state.snapshot(sid) for sid in self._state.messages]

    def message(self, sid: str) -> dict[str, Any]:
        """The current resource of message `sid` (KeyError if unknown)."""
        return self._state.snapshot(sid)

    def status_callback_url(self, sid: str) -> str | None:
        """The StatusCallback the message was created with."""
        return self._state.get(sid).status_callback

    def count_by_to(self, *, created_only: bool = False) -> dict[str, int]:
        """Create requests per To (only ones that created a message if `created_only`)."""
        return count_by_to(self.requests, created_only=created_only)

    def max_rate(self, window_s: float = 1.0, *, sends_only: bool = True) -> int:
        """Most (create) requests received within any `window_s`-second window."""
        return max_rate(self.requests, window_s, sends_only=sends_only)

    def wait_for_requests(self, count: int, timeout: float = 5.0, *, sends_only: bool = True) -> list[RecordedRequest]:
        """Block until at least `count` (create) requests arrived; returns them (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.sends if sends_only else self.requests
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(got)} of {count} requests arrived within {timeout}s")
            time.sleep(0.005)

    # -- lifecycle of a message ---------------------------------------------------------------
    def advance(
        self,
        sid: str,
        status: str,
        *,
        error_code: int | None = None,
        error_message: str | None = None,
        price: str | float | None = None,
        price_unit: str | None = None,
    ) -> dict[str, Any]:
        """Set the status (and error/price) that fetch reports from now on; returns the resource."""
        return self._state.advance(
            sid, status, error_code=error_code, error_message=error_message, price=price, price_unit=price_unit
        )

    def build_status_callback(
        self,
        sid: str,
        status: str,
        error_code: int | None = None,
        url: str | None = None,
        price: str | float | None = None,
        *,
        price_unit: str = "USD",
        signature: SignatureMode = "valid",
        sign_url: str | None = None,
        extra: Mapping[str, str] | None = None,
        advance: bool = True,
    ) -> SignedWebhook:
        """The signed callback without sending it (for in-process ASGI test clients)."""
        return build_status_callback(
            self._state,
            sid,
            status,
            error_code=error_code,
            url=url,
            price=price,
            price_unit=price_unit,
            signature=signature,
            sign_url=sign_url,
            extra=extra,
            advance=advance,
        )

    def send_status_callback(
        self,
        sid: str,
        status: str,
        error_code: int | None = None,
        url: str | None = None,
        price: str | float | None = None,
        *,
        price_unit: str = "USD",
        signature: SignatureMode = "valid",
        sign_url: str | None = None,
        extra: Mapping[str, str] | None = None,
        advance: bool = True,
        timeout: float = 5.0,
    ) -> httpx.Response:
        """POST Twilio's status callback for `sid` to its StatusCallback (or `url`), signed.

        By default also advances the stored status. Returns the receiver's response.
        """
        hook = self.build_status_callback(
            sid,
            status,
            error_code,
            url,
            price,
            price_unit=price_unit,
            signature=signature,
            sign_url=sign_url,
            extra=extra,
            advance=advance,
        )
        return hook.post(timeout)

    async def asend_status_callback(
        self,
        sid: str,
        status: str,
        error_code: int | None = None,
        url: str | None = None,
        price: str | float | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """send_status_callback for async tests (same keyword options; `timeout` too)."""
        timeout = kwargs.pop("timeout", 5.0)
        hook = self.build_status_callback(sid, status, error_code, url, price, **kwargs)
        return await hook.apost(timeout)

    def build_inbound_message(
        self,
        url: str,
        from_: str,
        to: str,
        body: str,
        *,
        signature: SignatureMode = "valid",
        sign_url: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> SignedWebhook:
        """The signed incoming-message webhook, not sent."""
        params = inbound_message_params(self.account_sid, from_, to, body, extra)
        return sign_webhook(self.auth_token, url, params, signature=signature, sign_url=sign_url)

    def send_inbound_message(
        self,
        url: str,
        from_: str,
        to: str,
        body: str,
        *,
        signature: SignatureMode = "valid",
        sign_url: str | None = None,
        extra: Mapping[str, str] | None = None,
        timeout: float = 5.0,
    ) -> httpx.Response:
        """POST an incoming SMS (e.g. "STOP") to `url` as Twilio would, signed; returns the response."""
        return self.build_inbound_message(
            url, from_, to, body, signature=signature, sign_url=sign_url, extra=extra
        ).post(timeout)


# ---------------------------------------------------------------------------------------------
# Separate process
# ---------------------------------------------------------------------------------------------


class FakeTwilioRemote:
    """Client of a fake running in another process (`python -m tests.peers.fake_twilio`)."""

    def __init__(
        self,
        base_url: str,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        """Close the control connection."""
        self._http.close()

    def _call(
        self, method: str, path: str, payload: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        response = self._http.request(method, path, json=payload, params=params)
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    def client(self, timeout: float = 5.0) -> Client:
        """An official SDK Client pointed at the remote fake."""
        return make_twilio_client(self.base_url, self.account_sid, self.auth_token, timeout=timeout)

    def requests(self, since: int = 0) -> list[RecordedRequest]:
        """Recorded API requests (from index `since`)."""
        data = self._call("GET", "/_fake/requests", params={"since": since})
        return [RecordedRequest.from_dict(r) for r in data["requests"]]

    def sends(self) -> list[RecordedRequest]:
        """Recorded message-create requests."""
        return [r for r in self.requests() if r.endpoint == "messages.create"]

    def messages(self) -> list[dict[str, Any]]:
        """Created messages (resource JSON plus `_status_callback`)."""
        return self._call("GET", "/_fake/messages")["messages"]

    def stats(self, window_s: float = 1.0) -> dict[str, Any]:
        """Server-side counts: requests, sends, created, max_rate, count_by_to, created_by_to."""
        return self._call("GET", "/_fake/stats", params={"window_s": window_s})

    def count_by_to(self, *, created_only: bool = False) -> dict[str, int]:
        """Create requests per To (see FakeTwilio.count_by_to)."""
        return count_by_to(self.requests(), created_only=created_only)

    def max_rate(self, window_s: float = 1.0, *, sends_only: bool = True) -> int:
        """Most (create) requests within any `window_s` window."""
        return max_rate(self.requests(), window_s, sends_only=sends_only)

    def reset(self) -> None:
        """Forget everything (as FakeTwilio.reset)."""
        self._call("POST", "/_fake/reset")

    def script(self, *outcomes: Outcome, replace: bool = False) -> None:
        """Queue outcomes (FIFO); `replace` drops what was queued before."""
        self._call("POST", "/_fake/script", {"queue": [o.to_dict() for o in outcomes], "append": not replace})

    def set_outcome_for_to(self, to: str, outcome: Outcome | None) -> None:
        """Per-To rule (None removes it)."""
        self._call("POST", "/_fake/script", {"by_to": {to: outcome.to_dict() if outcome else None}})

    def set_default(self, outcome: Outcome) -> None:
        """The outcome when nothing else matched."""
        self._call("POST", "/_fake/script", {"default": outcome.to_dict()})

    def set_latency(self, latency_ms: float) -> None:
        """Server-wide latency in ms."""
        self._call("POST", "/_fake/script", {"latency_ms": latency_ms})

    def set_content_approval(self, sid: str, status: str = "approved", **kwargs: str) -> None:
        """As FakeTwilio.set_content_approval."""
        self._call("POST", "/_fake/content", {"sid": sid, "status": status, **kwargs})

    def advance(self, sid: str, status: str, **kwargs: Any) -> dict[str, Any]:
        """As FakeTwilio.advance (error_code, error_message, price, price_unit)."""
        return self._call("POST", "/_fake/advance", {"sid": sid, "status": status, **kwargs})

    def send_status_callback(
        self,
        sid: str,
        status: str,
        error_code: int | None = None,
        url: str | None = None,
        price: str | float | None = None,
        **kwargs: Any,
    ) -> int:
        """Have the fake POST the signed status callback; returns the receiver's HTTP status."""
        payload = {"sid": sid, "status": status, "error_code": error_code, "url": url, "price": price, **kwargs}
        return self._call("POST", "/_fake/callback", payload)["status_code"]

    def send_inbound_message(self, url: str, from_: str, to: str, body: str, **kwargs: Any) -> int:
        """Have the fake POST a signed incoming message; returns the receiver's HTTP status."""
        payload = {"url": url, "from": from_, "to": to, "body": body, **kwargs}
        return self._call("POST", "/_fake/inbound", payload)["status_code"]


REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeTwilioProcess:
    """Start `python -m tests.peers.fake_twilio` as a child process; `.remote` controls it."""

    def __init__(
        self,
        *,
        latency_ms: float = 0,
        port: int = 0,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        hang_s: float = 30.0,
        python: str = sys.executable,
        start_timeout: float = 20.0,
    ) -> None:
        self.argv = [
            python, "-m", "tests.peers.fake_twilio", "--port", str(port), "--latency-ms", str(latency_ms),
            "--account-sid", account_sid, "--auth-token", auth_token, "--hang-s", str(hang_s),
        ]  # fmt: skip
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.remote: FakeTwilioRemote | None = None

    def __enter__(self) -> FakeTwilioProcess:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        self.proc = subprocess.Popen(self.argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        while not self.base_url:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(remaining, 0))
            if not ready:
                self.__exit__()
                raise TimeoutError(f"fake Twilio process did not start within {self.start_timeout}s")
            line = self.proc.stdout.readline()
            if not line:
                code = self.proc.wait()
                raise RuntimeError(f"fake Twilio process exited with {code} before listening")
            if line.startswith("FAKE_TWILIO_URL="):
                self.base_url = line.strip().split("=", 1)[1]
        self.remote = FakeTwilioRemote(self.base_url, self.account_sid, self.auth_token)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.remote is not None:
            self.remote.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


def main(argv: list[str] | None = None) -> None:
    """Serve a fake Twilio until SIGINT/SIGTERM; prints FAKE_TWILIO_URL=... once listening."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m tests.peers.fake_twilio", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 = any free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--hang-s", type=float, default=30.0)
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    parser.add_argument("--no-validate", action="store_true", help="skip the To/From/Body checks")
    args = parser.parse_args(argv)

    state = _State(args.account_sid, args.auth_token, args.latency_ms, args.hang_s, not args.no_validate)
    app = FakeTwilioApp(state)
    sock = bind_loopback(args.host, args.port)
    config = uvicorn.Config(
        app,
        http="h11",
        interface="asgi3",
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,
        backlog=2048,
    )
    server = uvicorn.Server(config)
    print(f"FAKE_TWILIO_URL=http://{args.host}:{sock.getsockname()[1]}", flush=True)
    asyncio.run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()
