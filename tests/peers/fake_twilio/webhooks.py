"""Webhooks as Twilio sends them: status callbacks and incoming messages, signed with the account's token."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from twilio.request_validator import RequestValidator

from app.segments import count_segments
from tests.peers.fake_twilio.formats import format_price, new_sid, utc_now
from tests.peers.fake_twilio.store import API_VERSION, State

SignatureMode = Literal["valid", "wrong", "none"]


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
        params["Price"] = str(format_price(price))
        params["PriceUnit"] = price_unit
    if to.startswith("whatsapp:"):
        params["ChannelPrefix"] = "whatsapp"
    elif status in {"delivered", "undelivered"}:
        params["RawDlrDoneDate"] = utc_now().strftime("%y%m%d%H%M")
    params.update(extra or {})
    return params


def inbound_message_params(
    account_sid: str, from_: str, to: str, body: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The form Twilio POSTs to a number's incoming-message webhook."""
    sid = new_sid("SM")
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


def build_status_callback(
    state: State,
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
