"""What the fake remembers: accounts, recorded requests, the messages it created, their status."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from app.segments import count_segments
from tests.peers.fake_twilio.formats import format_price, new_sid, rfc2822, utc_now
from tests.peers.fake_twilio.records import RecordedRequest
from tests.peers.fake_twilio.scripting import Outcome, Script

DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "fa4e" * 8
API_VERSION = "2010-04-01"

MESSAGE_STATUSES = frozenset(
    {
        "queued", "sending", "sent", "failed", "delivered", "undelivered", "receiving", "received",
        "accepted", "scheduled", "read", "partially_delivered", "canceled",
    }
)  # fmt: skip
SENT_OR_LATER = frozenset({"sent", "delivered", "undelivered", "read", "failed", "partially_delivered"})


@dataclass
class StoredMessage:
    """One created message: its resource JSON and what it was created with."""

    resource: dict[str, Any]
    status_callback: str | None
    content_sid: str | None
    content_variables: str | None
    created_monotonic: float


class State:
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
        self.messages: dict[str, StoredMessage] = {}
        self.script = Script()
        self.content: dict[str, dict[str, Any]] = {}
        self.generation = 0  # bumped by reset(): requests still in flight from before must not touch state
        self.accounts: dict[str, str] = {}  # more accounts (SID -> token), e.g. a clinic's own (add_account)
        self.lookup_outcome: Outcome | None = None  # an error answer for every fetch/list (set_lookup_outcome)

    def token_of(self, account_sid: str | None) -> str | None:
        """The auth token of an account the fake serves (None if unknown)."""
        with self.lock:
            return self.auth_token if account_sid == self.account_sid else self.accounts.get(account_sid or "")

    def reset(self) -> None:
        """Forget everything but the constructor's settings."""
        with self.lock:
            self.generation += 1
            self.requests.clear()
            self.messages.clear()
            self.script.clear()
            self.content.clear()
            self.latency_ms = self.initial_latency_ms
            self.accounts.clear()
            self.lookup_outcome = None

    def create_message(
        self, account_sid: str, params: dict[str, str], multi: dict[str, list[str]], outcome: Outcome
    ) -> StoredMessage:
        now = utc_now()
        media = multi.get("MediaUrl") or ([params["MediaUrl"]] if "MediaUrl" in params else [])
        sid = new_sid("MM" if media else "SM")
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
            "date_created": rfc2822(now),
            "date_sent": None,
            "date_updated": rfc2822(now),
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
        stored = StoredMessage(
            resource=resource,
            status_callback=params.get("StatusCallback"),
            content_sid=params.get("ContentSid"),
            content_variables=params.get("ContentVariables"),
            created_monotonic=time.monotonic(),
        )
        with self.lock:
            self.messages[sid] = stored
        return stored

    def get(self, sid: str) -> StoredMessage:
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
        now = utc_now()
        with self.lock:
            res = self.get(sid).resource
            res["status"] = status
            res["date_updated"] = rfc2822(now)
            if status in SENT_OR_LATER and res["date_sent"] is None:
                res["date_sent"] = rfc2822(now)
            if error_code is not None:
                res["error_code"] = int(error_code)
                res["error_message"] = error_message
            if price is not None:
                res["price"] = format_price(price)
            if price_unit is not None:
                res["price_unit"] = price_unit
            return self.snapshot(sid)
