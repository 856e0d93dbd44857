"""FakeTwilio: the fake served in-process from a background thread, with the calls a test makes.

Script outcomes, inspect recorded requests and created messages, advance a message's status,
and post signed status callbacks and incoming messages as Twilio would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from twilio.rest import Client

from tests.peers._threaded import ThreadedASGIServer
from tests.peers.fake_twilio.app import FakeTwilioApp
from tests.peers.fake_twilio.content import set_content_approval
from tests.peers.fake_twilio.records import RecordedRequest, count_by_to, max_rate
from tests.peers.fake_twilio.scripting import Outcome
from tests.peers.fake_twilio.sdk import make_twilio_client
from tests.peers.fake_twilio.store import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, State
from tests.peers.fake_twilio.webhooks import (
    SignatureMode,
    SignedWebhook,
    build_status_callback,
    inbound_message_params,
    sign_webhook,
)


class FakeTwilio:
    """Fake Twilio REST API served from a background thread on 127.0.0.1 (see the package docstring)."""

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
        self._state = State(account_sid, auth_token, latency_ms, hang_s, validate_params)
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
        self._state.script.queue(*outcomes)

    def set_responder(self, fn: Callable[[dict[str, str]], Outcome | None] | None) -> None:
        """Decide outcomes with `fn(form params)` once the queue is empty; None falls through."""
        self._state.script.set_responder(fn)

    def set_outcome_for_to(self, to: str, outcome: Outcome | None) -> None:
        """Every create to `to` gets `outcome` (after queue and responder); None removes the rule."""
        self._state.script.set_for_to(to, outcome)

    def set_default(self, outcome: Outcome) -> None:
        """The outcome when nothing else matched (initially Outcome.success())."""
        self._state.script.set_default(outcome)

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
