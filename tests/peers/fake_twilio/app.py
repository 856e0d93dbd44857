"""The ASGI app: routes a request, checks Basic auth, applies latency, answers or misbehaves.

Message creation follows the scripted Outcome (hang, drop, accept then fail ...); the answers
themselves come from messages_api.py and content.py, the control API from control.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from tests.peers.fake_twilio import control
from tests.peers.fake_twilio.asgi import abort_connection, basic_auth, read_body, respond
from tests.peers.fake_twilio.content import approval_request
from tests.peers.fake_twilio.errors import twilio_error_body
from tests.peers.fake_twilio.messages_api import list_page, update_message, validate_create
from tests.peers.fake_twilio.records import RecordedRequest
from tests.peers.fake_twilio.scripting import CREATES_MESSAGE, Outcome
from tests.peers.fake_twilio.store import API_VERSION, State

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


class FakeTwilioApp:
    """The ASGI application behind FakeTwilio (one per server; holds the shared State)."""

    def __init__(self, state: State) -> None:
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
        body = await read_body(receive)
        method: str = scope["method"]
        path: str = scope["path"]
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if path.startswith("/_fake/"):
            await control.handle(self.state, method, path, query, body, send)
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
        await respond(send, status, payload, headers)

    async def _api(self, rec: RecordedRequest, headers: Mapping[str, str], send: Callable[..., Any]) -> None:
        state = self.state
        latency = state.latency_ms
        creds = basic_auth(headers)
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
            await self._finish(rec, send, 200, list_page(state, rec))
        elif rec.endpoint == "content.approval":
            assert rec.sid is not None
            approval = approval_request(state, rec.sid)
            if approval is None:
                rec.outcome = "not_found"
                await self._finish(rec, send, 404, twilio_error_body(20404, path=rec.path))
            else:
                await self._finish(rec, send, 200, approval)
        else:
            assert rec.sid is not None
            with state.lock:
                known = rec.sid in state.messages and (
                    state.messages[rec.sid].resource["account_sid"] == rec.account_sid
                )
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
                await self._finish(rec, send, 200, update_message(state, rec))

    async def _create(self, rec: RecordedRequest, send: Callable[..., Any]) -> None:
        state = self.state
        generation = state.generation
        params = rec.params
        fill = {"to": params.get("To", ""), "from": params.get("From", ""), "path": rec.path}
        invalid = validate_create(params) if state.validate_params else None
        outcome = Outcome.error(invalid) if invalid is not None else state.script.next_outcome(params)
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
            if await abort_connection(send):
                return
            kind = "accept_then_error" if created else "error"  # could not drop: answer 500 instead
            outcome = Outcome.accept_then_error() if created else Outcome.error(20500)
        if kind in {"hang", "accept_then_hang"} and await self._hang(hang_s):
            await abort_connection(send)  # the server is stopping
            return
        if state.generation != generation:  # reset() while this request was in flight: the test moved on
            await abort_connection(send)
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
