"""Twilio SMS and WhatsApp through the official SDK, with a timeout and honest error classes."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from app.providers.base import (
    Accepted,
    AmbiguousOutcome,
    LookupResult,
    NotProcessed,
    OutgoingMessage,
    PermanentFailure,
    ProviderError,
)
from app.providers.error_codes import FailureKind, explain
from db.enums import Channel, MessageStatus

# The SDK logs every request's parameters (numbers, bodies) at INFO: keep patient data out of logs.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

# Twilio's message statuses in our lifecycle. "queued/accepted/sending" at Twilio = sent by us.
TWILIO_STATUS = {
    "accepted": MessageStatus.SENT,
    "scheduled": MessageStatus.SENT,
    "queued": MessageStatus.SENT,
    "sending": MessageStatus.SENT,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.READ,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.FAILED,
    "receiving": MessageStatus.SENT,
    "received": MessageStatus.SENT,
}


def _decimal(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return abs(Decimal(str(value)))  # Twilio reports prices as negative amounts
    except InvalidOperation:
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class TwilioProvider:
    """One channel (SMS or WhatsApp) on one Twilio account."""

    def __init__(
        self,
        channel: Channel,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_base_url: str | None = None,
        timeout_seconds: float = 15.0,
    ) -> None:
        if channel not in (Channel.SMS, Channel.WHATSAPP):
            raise ValueError("Twilio sends SMS and WhatsApp only")
        if not (from_number or messaging_service_sid):
            raise ValueError("Twilio needs a From number or a Messaging Service SID")
        self.name = "twilio"
        self.channel = channel
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._from = from_number
        self._service_sid = messaging_service_sid
        self._api_base_url = api_base_url
        self._timeout = timeout_seconds
        self._local = threading.local()

    @property
    def sender(self) -> str:
        return self._service_sid or self._address(self._from or "")

    def _client(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = Client(self._account_sid, self._auth_token,
                            http_client=TwilioHttpClient(timeout=self._timeout))
            if self._api_base_url:
                client.edge = client.region = None  # TWILIO_EDGE/REGION would rewrite the host
                client.api.base_url = self._api_base_url.rstrip("/")
            self._local.client = client
        return client

    def warm_up(self) -> None:
        """Create this thread's client before a rate slot is taken (the first one is slow to build)."""
        self._client()

    def _address(self, number: str) -> str:
        if self.channel == Channel.WHATSAPP and not number.startswith("whatsapp:"):
            return f"whatsapp:{number}"
        return number

    def send(self, message: OutgoingMessage) -> Accepted:
        params: dict[str, Any] = {"to": self._address(message.recipient)}
        if self._service_sid and self.channel == Channel.SMS:
            params["messaging_service_sid"] = self._service_sid
        else:
            params["from_"] = self._address(self._from or "")
        if message.content_sid:
            params["content_sid"] = message.content_sid
            params["content_variables"] = json.dumps(message.content_variables or {}, ensure_ascii=False)
        else:
            params["body"] = message.body
        if message.status_callback_url:
            params["status_callback"] = message.status_callback_url
        try:
            created = self._client().messages.create(**params)
        except TwilioRestException as exc:
            raise self._classify(exc) from None
        except requests.exceptions.ConnectTimeout:
            raise NotProcessed("Twilio could not be reached (connect timeout).", code="connection",
                               provider=self.name) from None
        except requests.exceptions.Timeout:
            raise AmbiguousOutcome("Twilio did not answer in time; it may have the message.", code="timeout",
                                   provider=self.name) from None
        except requests.exceptions.ConnectionError as exc:
            if _refused_before_sending(exc):
                raise NotProcessed("Twilio could not be reached.", code="connection", provider=self.name) from None
            raise AmbiguousOutcome("The connection to Twilio broke after the request was sent.",
                                   code="timeout", provider=self.name) from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema):
            raise NotProcessed("The Twilio API address is not a valid URL (TWILIO_API_BASE_URL).",
                               code="configuration", provider=self.name, configuration=True) from None
        except (requests.exceptions.RequestException, TwilioException, ValueError) as exc:
            # The request left; its answer broke or could not be read (a proxy's HTML page, a cut body).
            raise AmbiguousOutcome(f"Twilio's answer could not be read ({type(exc).__name__}); it may have "
                                   "the message.", code="twilio-unreadable", provider=self.name) from None
        return Accepted(
            provider_message_id=created.sid,
            status=TWILIO_STATUS.get(str(created.status), MessageStatus.SENT),
            price=_decimal(created.price),
            price_unit=created.price_unit,
            segments=_int(created.num_segments),
            sender=self.sender,
        )

    def _classify(self, exc: TwilioRestException) -> Exception:
        code = str(exc.code) if exc.code else None
        text = exc.msg or str(exc)
        if exc.status == 429 or code == "20429":
            return NotProcessed(text, code=code or "20429", provider=self.name, retry_after=1.0, throttled=True)
        if exc.status >= 500:
            return AmbiguousOutcome(text, code=code or "20500", provider=self.name)
        if exc.status in (401, 403) or code == "20003":  # our credentials were refused: nothing was sent
            return NotProcessed(text, code=code or "20003", provider=self.name, configuration=True)
        info = explain(code)
        if info is not None and info.kind == FailureKind.NOT_PROCESSED:
            return NotProcessed(text, code=code, provider=self.name, retry_after=60.0, throttled=True)
        return PermanentFailure(
            text, code=code, provider=self.name,
            opt_out=info is not None and info.kind == FailureKind.OPT_OUT,
            configuration=info is not None and info.kind == FailureKind.CONFIGURATION,
        )

    def lookup(self, message: OutgoingMessage, *, provider_message_id: str | None,
               sent_after: dt.datetime, taken: Callable[[str], bool] | None = None) -> LookupResult | None:
        """Fetch by SID, or find the message among recent ones from our sender to the same number with
        the same body (a WhatsApp template: any body), sent since ``sent_after``, whose SID no other
        message of ours holds (``taken``): two look-alike messages are never settled by one SID."""
        try:
            if provider_message_id:
                found = self._client().messages(provider_message_id).fetch()
                return self._result(found)
            search: dict[str, Any] = {"to": self._address(message.recipient), "limit": 50}
            if not (self._service_sid and self.channel == Channel.SMS):
                search["from_"] = self._address(self._from or "")
            candidates = self._client().messages.list(**search)
        except TwilioRestException as exc:
            if exc.status == 404 and provider_message_id:  # no such message (a list is never 404 for that)
                return LookupResult(found=False)
            raise self._lookup_error(exc.status, str(exc.code) if exc.code else None) from None
        except TwilioException as exc:  # the SDK's base class: a list page that did not come back 200
            response = exc.args[1] if len(exc.args) > 1 else None
            raise self._lookup_error(getattr(response, "status_code", None), None) from None
        except requests.exceptions.Timeout:
            raise AmbiguousOutcome("Lookup failed: Twilio did not answer in time.", code="timeout",
                                   provider=self.name) from None
        except (requests.exceptions.RequestException, ValueError) as exc:  # transport, or an unreadable answer
            raise AmbiguousOutcome(f"Lookup failed: {type(exc).__name__}", code="connection",
                                   provider=self.name) from None
        margin = sent_after - dt.timedelta(seconds=60)
        for item in candidates:
            created = item.date_created
            if created is not None and created.tzinfo is None:
                created = created.replace(tzinfo=dt.UTC)
            body_matches = message.content_sid is not None or (item.body or "") == message.body
            ours = not (self._service_sid and self.channel == Channel.SMS) or getattr(
                item, "messaging_service_sid", None) in (None, self._service_sid)
            if body_matches and ours and (created is None or created >= margin) and not (taken and taken(item.sid)):
                return self._result(item)
        return LookupResult(found=False)

    def _lookup_error(self, status: int | None, code: str | None) -> ProviderError:
        """A failed lookup: the message's fate is still unknown (never "Twilio does not have it")."""
        if status == 429 or code == "20429":
            text, code = "too many requests to Twilio", code or "20429"
        elif status in (401, 403) or code == "20003":
            text, code = "Twilio did not accept the account's credentials", code or "20003"
        else:
            text, code = f"Twilio answered HTTP {status or '?'}", code or f"twilio-{status or 'error'}"
        return AmbiguousOutcome(f"Lookup failed: {text}.", code=code, provider=self.name)

    def _result(self, item: Any) -> LookupResult:
        return LookupResult(
            found=True,
            provider_message_id=item.sid,
            status=TWILIO_STATUS.get(str(item.status), MessageStatus.SENT),
            error_code=str(item.error_code) if item.error_code else None,
            price=_decimal(item.price),
            price_unit=item.price_unit,
            segments=_int(item.num_segments),
        )


def _refused_before_sending(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the TCP connection was never made (so no request reached Twilio)."""
    text = repr(exc)
    return any(marker in text for marker in ("NewConnectionError", "Connection refused", "NameResolutionError",
                                              "Failed to resolve"))
