"""FakeTwilioRemote: the client of a fake running in another process, over its control API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from twilio.rest import Client

from tests.peers.fake_twilio.records import RecordedRequest, count_by_to, max_rate
from tests.peers.fake_twilio.scripting import Outcome
from tests.peers.fake_twilio.sdk import make_twilio_client
from tests.peers.fake_twilio.store import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN


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
