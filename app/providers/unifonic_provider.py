"""Unifonic SMS (Saudi Arabia) over its documented REST API with a small httpx client.

There is no official Python SDK. Replies are parsed leniently (``success`` comes as the string
"true"/"false" or as a boolean; numbers as strings or numbers). Every message carries our
message id as ``CorrelationID``, so an ambiguous outcome (timeout, 5xx, 409 duplicate) is settled
by ``lookup`` and never by a blind resend.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from app.providers.base import (
    Accepted,
    AmbiguousOutcome,
    LookupResult,
    NotProcessed,
    OutgoingMessage,
    PermanentFailure,
)
from app.providers.error_codes import ERRORS, FailureKind, explain
from db.enums import MessageClass, MessageStatus

# httpx logs every request URL at INFO; the bodies stay out, but keep provider chatter down.
logging.getLogger("httpx").setLevel(logging.WARNING)

SEND_PATH = "/rest/SMS/messages"
LOOKUP_PATH = "/rest/SMS/Messages/GetMessagesDetails"

SERVICE = 3
PROMOTIONAL = 5

# Unifonic's message / DLR statuses in our lifecycle (compared case-insensitively).
UNIFONIC_STATUS: dict[str, MessageStatus] = {
    "queued": MessageStatus.SENT,
    "scheduled": MessageStatus.SENT,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "undeliverable": MessageStatus.UNDELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "rejected": MessageStatus.FAILED,
}

# ER codes that mean "the provider did not accept: our account or sender is wrong".
_CONFIGURATION_CODES = frozenset({"ER-01", "ER-08"})
_HTTP_CONFIGURATION = {401: "unifonic-401", 402: "unifonic-402", 403: "unifonic-403", 480: "unifonic-480"}


def _truthy(value: Any) -> bool | None:
    """Unifonic's ``success``: True/False, "true"/"false" (any case), 1/0; None when absent or unclear."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
    return None


def _decimal(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return abs(Decimal(str(value).strip()))
    except InvalidOperation:
        return None


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        try:
            return int(float(str(value)))
        except (TypeError, ValueError):
            return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def map_status(value: Any) -> MessageStatus | None:
    """Our status for a Unifonic status / DLR word (None when unknown)."""
    text = _text(value)
    return UNIFONIC_STATUS.get(text.lower()) if text else None


def recipient_digits(number: str) -> str:
    """E.164 as Unifonic wants it: digits only, no '+' or international '00' prefix."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if number.strip().startswith("00") or (not number.strip().startswith("+") and digits.startswith("00")):
        digits = digits[2:]
    return digits


def parse_timestamp(value: Any) -> dt.datetime | None:
    """A Unifonic time ("2024-05-01 10:00:00", ISO 8601, RFC 2822 or epoch seconds) as aware UTC."""
    text = _text(value)
    if not text:
        return None
    moment: dt.datetime | None = None
    if text.replace(".", "", 1).isdigit():
        number = float(text)
        if number > 1e11:  # milliseconds
            number /= 1000
        return dt.datetime.fromtimestamp(number, dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def parse_delivery_report(form: Mapping[str, str]) -> tuple[str, MessageStatus, dt.datetime | None]:
    """(Unifonic MessageID, our status, report time) from a Unifonic delivery-report POST.

    Unifonic posts ``MessageID``, ``DLR`` (Delivered / Undeliverable), ``Recipient``,
    ``TimeCreated`` and ``DLRTimestamp``; the time is ``DLRTimestamp``, else ``TimeCreated``.
    Raises ValueError when the MessageID or a known DLR status is missing.
    """
    message_id = _text(form.get("MessageID"))
    if not message_id:
        raise ValueError("delivery report without MessageID")
    dlr = form.get("DLR") or form.get("Status")
    status = map_status(dlr)
    if status is None:
        raise ValueError(f"delivery report with an unknown DLR status: {dlr!r}")
    timestamp = parse_timestamp(form.get("DLRTimestamp")) or parse_timestamp(form.get("TimeCreated"))
    return message_id, status, timestamp


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("Retry-After")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            moment = parse_timestamp(value)
            if moment is not None:
                return max((moment - dt.datetime.now(dt.UTC)).total_seconds(), 0.0)
    return 1.0


class UnifonicProvider:
    """SMS through one Unifonic application (AppSid) and one registered sender name."""

    name = "unifonic"

    def __init__(
        self,
        *,
        app_sid: str,
        sender_id: str,
        base_url: str = "https://el.cloud.unifonic.com",
        timeout_seconds: float = 15.0,
        message_type: int = SERVICE,
        status_callback_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        promotional_sender_id: str | None = None,
    ) -> None:
        if not app_sid:
            raise ValueError("Unifonic needs an AppSid")
        if not sender_id:
            raise ValueError("Unifonic needs a registered sender ID")
        if message_type not in (SERVICE, PROMOTIONAL):
            raise ValueError("Unifonic MessageType is 3 (service) or 5 (promotional)")
        if promotional_sender_id and not promotional_sender_id.upper().endswith("-AD"):
            raise ValueError("A Saudi promotional sender ID ends in -AD (e.g. AgdarClinic-AD)")
        self._app_sid = app_sid
        self.sender_id = sender_id
        self.promotional_sender_id = promotional_sender_id
        self.message_type = message_type
        self.status_callback_url = status_callback_url
        self.base_url = base_url.rstrip("/")
        # One client for all threads: httpx.Client is thread-safe and pools connections.
        self._http = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(timeout_seconds),
                                  transport=transport, headers={"Accept": "application/json"})

    @property
    def sender(self) -> str:
        return self.sender_id

    def close(self) -> None:
        self._http.close()

    def warm_up(self) -> None:
        """Nothing to build per thread (kept for parity with TwilioProvider)."""

    # -- send ---------------------------------------------------------------------------------
    def send(self, message: OutgoingMessage) -> Accepted:
        sender, message_type = self.sender_id, self.message_type
        if message.message_class == MessageClass.PROMOTIONAL:
            # Saudi rules: promotional SMS goes out under the clinic's separate "-AD" sender, type 5.
            if not self.promotional_sender_id:
                raise PermanentFailure(
                    "Promotional SMS in Saudi Arabia needs the clinic's registered sender ending in -AD; "
                    "none is configured.", code="no-ad-sender", provider=self.name, configuration=True)
            sender, message_type = self.promotional_sender_id, PROMOTIONAL
        params: dict[str, str] = {
            "AppSid": self._app_sid,
            "SenderID": sender,
            "Recipient": recipient_digits(message.recipient),
            "Body": message.body,
            "CorrelationID": str(message.message_id),
            "MessageType": str(message_type),
        }
        if self.status_callback_url:
            params["statusCallback"] = self.status_callback_url
        try:
            response = self._http.post(SEND_PATH, data=params)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            raise NotProcessed("Unifonic could not be reached.", code="connection", provider=self.name) from None
        except httpx.UnsupportedProtocol:
            raise NotProcessed("The Unifonic API address is not a valid URL (UNIFONIC_API_BASE_URL).",
                               code="configuration", provider=self.name, configuration=True) from None
        except httpx.TimeoutException:
            raise AmbiguousOutcome("Unifonic did not answer in time; it may have the message.", code="timeout",
                                   provider=self.name) from None
        except (httpx.HTTPError, httpx.StreamError) as exc:
            raise AmbiguousOutcome(f"The connection to Unifonic broke after the request was sent "
                                   f"({type(exc).__name__}).", code="timeout", provider=self.name) from None
        return self._accepted(response, sender)

    def _accepted(self, response: httpx.Response, sender: str) -> Accepted:
        payload = _json(response)
        status = response.status_code
        if status >= 300 or _truthy(payload.get("success")) is not True:
            raise self._classify(response, payload)
        data = payload.get("data") if isinstance(payload.get("data"), Mapping) else {}
        provider_id = _text(data.get("MessageID"))
        if not provider_id:
            raise AmbiguousOutcome("Unifonic answered success without a MessageID; it is looked up by reference.",
                                   code="unifonic-5xx", provider=self.name)
        return Accepted(
            provider_message_id=provider_id,
            status=map_status(data.get("Status")) or MessageStatus.SENT,
            price=_decimal(data.get("Cost")),
            price_unit=_text(data.get("CurrencyCode") or data.get("Currency")),
            segments=_int(data.get("NumberOfUnits")),
            sender=sender,
        )

    def _classify(self, response: httpx.Response, payload: Mapping[str, Any]) -> Exception:
        status = response.status_code
        er_code = _text(payload.get("errorCode") or payload.get("ErrorCode"))
        if er_code in ("ER-00", None) or not er_code.upper().startswith("ER-"):
            er_code = None
        text = _text(payload.get("message") or payload.get("Message")) or f"Unifonic answered HTTP {status}."
        if status == 429:
            return NotProcessed(text, code="unifonic-429", provider=self.name, retry_after=_retry_after(response),
                                throttled=True)
        if status in _HTTP_CONFIGURATION:
            return NotProcessed(text, code=er_code or _HTTP_CONFIGURATION[status], provider=self.name,
                                configuration=True)
        if status == 409:
            return AmbiguousOutcome("Unifonic already has a message with this reference; it is looked up, "
                                    "never resent.", code="unifonic-409", provider=self.name)
        if status == 410:
            return PermanentFailure(text, code=er_code or "unifonic-410", provider=self.name)
        if status >= 500:
            return AmbiguousOutcome(text, code="unifonic-5xx", provider=self.name)
        if er_code is None:
            if status < 300 and not payload:
                return AmbiguousOutcome("Unifonic's reply could not be read; the message is looked up.",
                                        code="unifonic-5xx", provider=self.name)
            return PermanentFailure(text, code=f"unifonic-{status}" if status >= 300 else "unifonic-rejected",
                                    provider=self.name)
        er_code = er_code.upper()
        info = explain(er_code)
        if er_code == "ER-09":
            text = "Identical content was already sent to this number; not resent."
        elif er_code in ERRORS and text != ERRORS[er_code].title:
            text = f"{ERRORS[er_code].title} (Unifonic: {text})"
        if er_code in _CONFIGURATION_CODES or (info is not None and info.kind == FailureKind.CONFIGURATION):
            # Our account or sender was refused: Unifonic did not take the message (failover may apply).
            return NotProcessed(text, code=er_code, provider=self.name, configuration=True)
        return PermanentFailure(text, code=er_code, provider=self.name)

    # -- lookup -------------------------------------------------------------------------------
    def lookup(self, message: OutgoingMessage, *, provider_message_id: str | None,
               sent_after: dt.datetime, taken: Callable[[str], bool] | None = None) -> LookupResult | None:
        """Ask Unifonic about the message by MessageID, else by CorrelationID (our message id)."""
        params = {"AppSid": self._app_sid}
        if provider_message_id:
            params["MessageID"] = provider_message_id
        else:
            params["CorrelationID"] = str(message.message_id)
        try:
            response = self._http.post(LOOKUP_PATH, data=params)
        except httpx.TimeoutException:
            raise AmbiguousOutcome("Lookup failed: Unifonic did not answer in time.", code="timeout",
                                   provider=self.name) from None
        except (httpx.HTTPError, httpx.StreamError, httpx.InvalidURL) as exc:
            raise AmbiguousOutcome(f"Lookup failed: {type(exc).__name__}", code="connection",
                                   provider=self.name) from None
        if response.status_code == 404:
            return LookupResult(found=False)
        payload = _json(response)
        if response.status_code == 429 or response.status_code in _HTTP_CONFIGURATION:  # still unknown
            reason = "too many requests" if response.status_code == 429 else "the account (AppSid) was refused"
            raise AmbiguousOutcome(f"Lookup failed: {reason}.", code=f"unifonic-{response.status_code}",
                                   provider=self.name)
        if response.status_code >= 300 or _truthy(payload.get("success")) is not True:
            if response.status_code < 500 and _looks_not_found(payload):
                return LookupResult(found=False)
            text = _text(payload.get("message")) or f"HTTP {response.status_code}"
            raise AmbiguousOutcome(f"Lookup failed: {text}", code=_text(payload.get("errorCode"))
                                   or f"unifonic-{response.status_code}", provider=self.name)
        data = payload.get("data")
        items = _message_items(data)
        wanted_id = provider_message_id
        wanted_ref = None if provider_message_id else str(message.message_id)
        for item in items:
            item_id = _text(item.get("MessageID"))
            item_ref = _text(item.get("CorrelationID"))
            if wanted_id and item_id and item_id != wanted_id:
                continue
            if wanted_ref and item_ref and item_ref != wanted_ref:
                continue
            currency = data.get("CurrencyCode") if isinstance(data, Mapping) else None
            return LookupResult(
                found=True,
                provider_message_id=item_id or provider_message_id,
                status=map_status(item.get("Status") or item.get("DLR")) or MessageStatus.SENT,
                error_code=_text(item.get("ErrorCode") or item.get("errorCode")),
                price=_decimal(item.get("Cost")),
                price_unit=_text(item.get("CurrencyCode") or currency),
                segments=_int(item.get("NumberOfUnits")),
            )
        return LookupResult(found=False)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _message_items(data: Any) -> list[Mapping[str, Any]]:
    """The message records in a GetMessagesDetails ``data`` (a list, {messages: [...]}, or one record)."""
    if isinstance(data, list):
        return [i for i in data if isinstance(i, Mapping)]
    if isinstance(data, Mapping):
        for key in ("messages", "Messages", "message", "Message"):
            inner = data.get(key)
            if isinstance(inner, list):
                return [i for i in inner if isinstance(i, Mapping)]
            if isinstance(inner, Mapping):
                return [inner]
        if "MessageID" in data:
            return [data]
    return []


def _looks_not_found(payload: Mapping[str, Any]) -> bool:
    text = str(payload.get("message") or "").lower()
    return "not found" in text or "no message" in text or "does not exist" in text
