"""Which clinic a patient's reply is for: the number (or Messaging Service) it was sent to decides.

Cross-clinic by nature (the reply arrives before anyone knows its clinic), so this reads clinic ids
and configuration only (each clinic's routes in ``Tenant.settings``, and which clinic last wrote to
the number), never a clinic's patient data; everything else is done in the clinic found.

1. A clinic's Twilio route step names its own sender (a number, a WhatsApp number or a Messaging
   Service). When exactly one clinic sends this channel from the ``To`` (or from the Messaging
   Service Twilio names in ``MessagingServiceSid``), the reply is that clinic's, whoever else the
   number is a patient of.
2. Several clinics may share a sender: the server's own Twilio sender (``TWILIO_FROM_NUMBER``,
   ``TWILIO_MESSAGING_SERVICE_SID``, ``TWILIO_WHATSAPP_FROM``) is shared by every clinic whose route
   leaves it empty. Then the reply is for the clinic that most recently sent a message from that
   sender to this number (the message the patient is most likely answering); the same when no
   clinic's routes name the ``To`` any more (a route changed since).
3. When no clinic can be told (a shared sender that has never written to this number, an unknown
   number), the reply is kept nowhere: the caller logs it and says so. It is never attached to a
   clinic by guess, and never to a clinic because the sender is one of its patients.

``sharing``: every clinic that sends this channel from the ``To``. Facts about the sender and the
patient hold for each of them: an opt-out keyword (the patient opted out of the number they see; on
SMS Twilio itself then refuses that sender to them) and WhatsApp's 24-hour window (it belongs to the
WhatsApp number).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Engine, select

from app.config import Settings
from app.providers.routing import ClinicRouting, destinations, routing_from_settings
from db.enums import Channel
from db.models import Message, Tenant
from db.session import system_session

WHATSAPP_PREFIX = "whatsapp:"


def bare(address: str) -> str:
    """``whatsapp:+14155238886`` -> ``+14155238886``; other addresses unchanged (trimmed)."""
    return (address or "").strip().removeprefix(WHATSAPP_PREFIX)


@dataclass(frozen=True)
class ClinicMatch:
    tenant_id: uuid.UUID | None  # None: no clinic can be told
    how: str  # why this clinic (or why none), in words for the log and the outcome
    sharing: tuple[uuid.UUID, ...] = ()  # the clinics that send this channel from the ``To``


def process_senders(settings: Settings, channel: Channel) -> frozenset[str]:
    """The server's own Twilio senders for ``channel`` (what a route step with no sender uses)."""
    if Channel(channel) == Channel.WHATSAPP:
        found = {settings.twilio_whatsapp_from}
    else:
        found = {settings.twilio_from_number, settings.twilio_messaging_service_sid}
    return frozenset(bare(s) for s in found if s)


def clinic_senders(routing: ClinicRouting, channel: Channel, settings: Settings) -> frozenset[str]:
    """The Twilio senders a clinic sends ``channel`` from (any destination), as Twilio names them."""
    channel = Channel(channel)
    default = settings.whatsapp_provider if channel == Channel.WHATSAPP else settings.sms_provider
    found: set[str] = set()
    for destination in destinations(channel):
        steps = routing.steps(channel, destination)
        if not steps and default.lower() == "twilio":
            found |= process_senders(settings, channel)
        for step in steps:
            if step.provider == "twilio":
                found |= {bare(step.sender)} if step.sender else process_senders(settings, channel)
    return frozenset(found)


def _senders_to_clinics(engine: Engine, settings: Settings, channel: Channel) -> dict[uuid.UUID, frozenset[str]]:
    with system_session(engine) as session:
        rows = session.execute(select(Tenant.id, Tenant.settings)).all()
    return {tenant_id: clinic_senders(routing_from_settings(raw), channel, settings) for tenant_id, raw in rows}


def clinics_naming(engine: Engine, settings: Settings, channel: Channel, senders: Collection[str], *,
                   other_than: uuid.UUID) -> list[uuid.UUID]:
    """The clinics other than ``other_than`` whose routes name one of ``senders`` as their own (the
    server's shared senders excepted): a clinic's own number answers its patients' replies, so no
    second clinic may claim it (it would receive the first clinic's replies and opt-outs)."""
    own = {bare(s) for s in senders if s} - process_senders(settings, channel)
    if not own:
        return []
    return [t for t, named in _senders_to_clinics(engine, settings, channel).items() if t != other_than and named & own]


def _identities(to_address: str, messaging_service_sid: str) -> set[str]:
    return {s for s in (bare(to_address), (messaging_service_sid or "").strip()) if s}


def number_owner(engine: Engine, settings: Settings, channel: Channel, to_address: str,
                 messaging_service_sid: str = "") -> uuid.UUID | None:
    """The one clinic that sends ``channel`` from the ``To`` (or its Messaging Service), else None."""
    wanted = _identities(to_address, messaging_service_sid)
    owners = [t for t, senders in _senders_to_clinics(engine, settings, channel).items() if senders & wanted]
    return owners[0] if len(owners) == 1 else None


def _last_writer(engine: Engine, clinics: Collection[uuid.UUID], channel: Channel, phone: str,
                 senders: Collection[str]) -> uuid.UUID | None:
    """The clinic that last sent ``channel`` from one of ``senders`` to ``phone`` (reads the clinic id only)."""
    if not clinics or not senders:
        return None
    stored = {f"{WHATSAPP_PREFIX}{s}" if Channel(channel) == Channel.WHATSAPP and s.startswith("+") else s
              for s in senders} | set(senders)
    with system_session(engine) as session:
        return session.scalar(
            select(Message.tenant_id).where(
                Message.tenant_id.in_(list(clinics)), Message.recipient == phone, Message.channel == channel,
                Message.sender.in_(sorted(stored)))
            .order_by(Message.created_at.desc()).limit(1))


def find_clinic(engine: Engine, settings: Settings, channel: Channel, to_address: str, phone: str,
                messaging_service_sid: str = "") -> ClinicMatch:
    """The clinic a reply from ``phone`` to ``to_address`` is for (see the module docstring)."""
    wanted = _identities(to_address, messaging_service_sid)
    senders = _senders_to_clinics(engine, settings, channel)
    sharing = tuple(sorted((t for t, s in senders.items() if s & wanted), key=str))
    if len(sharing) == 1:
        return ClinicMatch(sharing[0], "the clinic's own sender", sharing)
    candidates = sharing or tuple(senders)
    last = _last_writer(engine, candidates, channel, phone, wanted)
    if last is not None:
        how = "the clinic that last wrote to this number from this shared sender" if sharing else (
            "the clinic that last wrote to this number from this sender")
        return ClinicMatch(last, how, sharing)
    if sharing:
        return ClinicMatch(None, f"{len(sharing)} clinics share this sender and none has written to this number "
                                 "from it", sharing)
    return ClinicMatch(None, "no clinic sends from this number", sharing)
