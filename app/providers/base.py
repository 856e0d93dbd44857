"""The provider interface and the outcomes a send can have.

A provider either accepts a message (``Accepted``) or raises one of:
- ``PermanentFailure``: this message will never go through as it is (bad number, opted out);
- ``NotProcessed``: the provider definitely did not take it; safe to try again later, and safe to
  hand to the clinic's next provider (failover) unless it was only throttling (``throttled``);
  ``configuration`` means our account or sender is refused there (auth, balance, sender ID);
- ``AmbiguousOutcome``: the request may have been processed (timeout, 5xx after sending):
  the message must be settled by ``lookup`` or a status callback, never resent blindly.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from app.errors import AppError
from db.enums import Channel, Language, MessageClass, MessageStatus


@dataclass(frozen=True)
class OutgoingMessage:
    """What a provider needs to send one message. Built from the database row by the worker."""

    message_id: uuid.UUID
    tenant_id: uuid.UUID
    channel: Channel
    recipient: str
    body: str
    language: Language = Language.EN
    subject: str = ""
    status_callback_url: str | None = None
    content_sid: str | None = None
    content_variables: dict[str, str] | None = None
    unsubscribe_url: str | None = None
    sender_name: str = ""
    message_class: MessageClass = MessageClass.SERVICE


@dataclass(frozen=True)
class Accepted:
    provider_message_id: str
    status: MessageStatus = MessageStatus.SENT
    price: Decimal | None = None
    price_unit: str | None = None
    segments: int | None = None
    sender: str | None = None
    # The dev outbox's planned outcome: later (delay seconds, status, error code) events.
    playback: tuple[tuple[float, MessageStatus, str | None], ...] = ()


@dataclass(frozen=True)
class LookupResult:
    """What the provider knows about a message we may have sent."""

    found: bool
    provider_message_id: str | None = None
    status: MessageStatus | None = None
    error_code: str | None = None
    price: Decimal | None = None
    price_unit: str | None = None
    segments: int | None = None


class ProviderError(AppError):
    def __init__(self, message: str, *, code: str | None = None, provider: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.provider = provider


class PermanentFailure(ProviderError):
    """The message cannot be delivered as it is. ``opt_out`` means record the patient's opt-out."""

    def __init__(self, message: str, *, code: str | None = None, provider: str = "", opt_out: bool = False,
                 configuration: bool = False) -> None:
        super().__init__(message, code=code, provider=provider)
        self.opt_out = opt_out
        self.configuration = configuration


class NotProcessed(ProviderError):
    """The provider did not take the message; retry after ``retry_after`` seconds at the earliest.

    ``configuration``: refused for our account or sender (authentication, no balance, sender not
    registered); retrying the same provider will not help until someone fixes it.
    ``throttled``: only too many requests; the same provider takes it after a pause.
    """

    def __init__(self, message: str, *, code: str | None = None, provider: str = "",
                 retry_after: float | None = None, configuration: bool = False, throttled: bool = False) -> None:
        super().__init__(message, code=code, provider=provider)
        self.retry_after = retry_after
        self.configuration = configuration
        self.throttled = throttled

    @property
    def allows_failover(self) -> bool:
        """The clinic's next provider may take the message (it definitely is not at this one)."""
        return not self.throttled


class AmbiguousOutcome(ProviderError):
    """The provider may have the message. Settle by lookup or callback; never resend blindly."""


class Provider(Protocol):
    name: str

    def send(self, message: OutgoingMessage) -> Accepted:
        """Hand ``message`` to the provider; raise a ProviderError subclass when it is not accepted."""
        ...

    def lookup(self, message: OutgoingMessage, *, provider_message_id: str | None,
               sent_after: dt.datetime, taken: Callable[[str], bool] | None = None) -> LookupResult | None:
        """Find a message we may have sent (by id, else by recipient/body/time); None if unsupported.

        A search by recipient and body may meet another message of ours that looks the same (another
        clinic on the same account, a retry): ``taken(provider_id)`` says an id already belongs to
        another message, and such a candidate is never adopted.

        Every failure to ask (transport errors, 401 after changed credentials, 429, 5xx, an answer
        that cannot be read) raises ``AmbiguousOutcome``: the message's fate is still unknown. Only
        a provider's clear "no such message" is ``LookupResult(found=False)``.
        """
        ...


@dataclass
class ProviderSet:
    """The provider for each channel."""

    by_channel: dict[Channel, Provider] = field(default_factory=dict)

    def for_channel(self, channel: Channel) -> Provider:
        try:
            return self.by_channel[Channel(channel)]
        except KeyError:
            raise PermanentFailure(f"No provider is configured for {Channel(channel).label}.",
                                   code="no-provider", configuration=True) from None
