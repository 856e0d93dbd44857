"""A clinic's routing: for each channel (and, for SMS, each destination) an ordered list of providers.

Stored in ``Tenant.settings["routing"]`` as ``{"sms:SA": [{"provider": "unifonic", "sender":
"AgdarClinic", "promotional_sender": "AgdarClinic-AD"}, {"provider": "twilio", ...}], ...}``.
The first step is the primary, the next ones are tried only when the previous one definitely did
not take the message (see ``app.delivery.sender``). A channel/destination with no steps uses the
process-wide providers from the settings (``SMS_PROVIDER`` and friends). An empty ``sender``
means the provider's sender from the settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from app.errors import ValidationError
from db.enums import Channel

SAUDI = "SA"  # Saudi numbers (+966)
ELSEWHERE = "other"  # every other number
ANY = "all"  # channels with no destination split
SAUDI_PREFIX = "+966"
MAX_STEPS = 3

PROVIDERS_FOR: dict[Channel, tuple[str, ...]] = {
    Channel.SMS: ("unifonic", "twilio", "dev"),
    Channel.WHATSAPP: ("twilio", "dev"),
    Channel.EMAIL: ("smtp", "dev"),
}
PROVIDER_LABELS = {"unifonic": "Unifonic", "twilio": "Twilio", "smtp": "SMTP", "dev": "Dev outbox (no real send)"}
DESTINATION_LABELS = {SAUDI: "Saudi numbers (+966)", ELSEWHERE: "Numbers abroad", ANY: "All recipients"}

_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
_MESSAGING_SERVICE = re.compile(r"^MG[0-9a-fA-F]{32}$")
_SENDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 .&-]{1,19}$")


def destinations(channel: Channel) -> tuple[str, ...]:
    """The destinations a channel is routed by: SMS splits Saudi numbers from the rest."""
    return (SAUDI, ELSEWHERE) if Channel(channel) == Channel.SMS else (ANY,)


def destination_of(channel: Channel, recipient: str) -> str:
    if Channel(channel) != Channel.SMS:
        return ANY
    return SAUDI if recipient.startswith(SAUDI_PREFIX) else ELSEWHERE


def route_key(channel: Channel, destination: str) -> str:
    return f"{Channel(channel).value}:{destination}"


@dataclass(frozen=True)
class RouteStep:
    provider: str
    sender: str = ""  # Twilio: From number or Messaging Service SID (MG...); Unifonic: sender name
    promotional_sender: str = ""  # Unifonic: the clinic's "-AD" sender for promotional SMS


@dataclass(frozen=True)
class ClinicRouting:
    """Every configured route of one clinic; ``steps`` is empty where the clinic chose nothing."""

    routes: Mapping[str, tuple[RouteStep, ...]]

    def steps(self, channel: Channel, destination: str) -> tuple[RouteStep, ...]:
        return self.routes.get(route_key(channel, destination), ())

    def providers(self) -> set[str]:
        return {step.provider for steps in self.routes.values() for step in steps}

    def to_settings(self) -> dict[str, list[dict[str, str]]]:
        return {key: [asdict(step) for step in steps] for key, steps in self.routes.items() if steps}


NO_ROUTING = ClinicRouting({})


def check_step(channel: Channel, step: RouteStep) -> RouteStep:
    """The step cleaned up, or a ValidationError saying what is wrong with it."""
    channel = Channel(channel)
    provider = step.provider.strip().lower()
    if provider not in PROVIDERS_FOR[channel]:
        allowed = ", ".join(PROVIDER_LABELS[p] for p in PROVIDERS_FOR[channel])
        raise ValidationError(f"{channel.label} cannot go through '{step.provider}'. Choose one of: {allowed}.",
                              field="provider")
    sender, promotional = step.sender.strip(), step.promotional_sender.strip()
    if sender and provider == "twilio" and channel == Channel.SMS and not (
            _PHONE.match(sender) or _MESSAGING_SERVICE.match(sender)):
        raise ValidationError(f"'{sender}' is not a Twilio SMS sender: use a number like +15005550006 or a "
                              "Messaging Service SID (MG followed by 32 hex characters).", field="sender")
    if sender and provider == "twilio" and channel == Channel.WHATSAPP and not _PHONE.match(sender):
        raise ValidationError(f"'{sender}' is not a WhatsApp sender number: use the international form, "
                              "e.g. +14155238886.", field="sender")
    if sender and provider == "unifonic" and not _SENDER_NAME.match(sender):
        raise ValidationError(f"'{sender}' is not a sender name Unifonic registers: 2-20 letters, digits, "
                              "spaces, dots or dashes, e.g. AgdarClinic.", field="sender")
    if promotional:
        if provider != "unifonic":
            raise ValidationError("Only Unifonic SMS has a separate promotional (-AD) sender.",
                                  field="promotional_sender")
        if not (_SENDER_NAME.match(promotional) and promotional.upper().endswith("-AD")):
            raise ValidationError(f"'{promotional}' is not a promotional sender: in Saudi Arabia it is the "
                                  "registered name ending in -AD, e.g. AgdarClinic-AD.", field="promotional_sender")
    if provider in ("dev", "smtp") and sender:
        raise ValidationError(f"{PROVIDER_LABELS[provider]} takes its sender from the settings.", field="sender")
    return RouteStep(provider, sender, promotional)


def check_route(channel: Channel, destination: str, steps: list[RouteStep]) -> tuple[RouteStep, ...]:
    """A whole route validated: known destination, 0..MAX_STEPS steps, no provider twice."""
    if destination not in destinations(channel):
        raise ValidationError(f"{Channel(channel).label} has no destination '{destination}'.", field="destination")
    if len(steps) > MAX_STEPS:
        raise ValidationError(f"At most {MAX_STEPS} providers per route.", field="steps")
    cleaned = tuple(check_step(channel, step) for step in steps)
    names = [step.provider for step in cleaned]
    if len(set(names)) != len(names):
        raise ValidationError("A provider appears twice in the route; a failover must be a different provider.",
                              field="steps")
    return cleaned


def routing_from_settings(settings: Mapping[str, Any] | None) -> ClinicRouting:
    """The clinic's routing from ``Tenant.settings`` (entries that no longer validate are ignored)."""
    raw = (settings or {}).get("routing") or {}
    routes: dict[str, tuple[RouteStep, ...]] = {}
    if not isinstance(raw, Mapping):
        return NO_ROUTING
    for key, items in raw.items():
        channel_name, _, destination = str(key).partition(":")
        try:
            channel = Channel(channel_name)
            steps = [RouteStep(str(i.get("provider", "")), str(i.get("sender", "")),
                               str(i.get("promotional_sender", ""))) for i in items]
            routes[route_key(channel, destination)] = check_route(channel, destination, steps)
        except (ValueError, ValidationError, AttributeError, TypeError):
            continue
    return ClinicRouting(routes)
