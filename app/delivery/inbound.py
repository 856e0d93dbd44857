"""What an inbound message from a patient changes: STOP / START keywords and WhatsApp's 24-hour window.

The HTTP layer (worker/webhooks.py) checks the signature and reads the form; the rules live here.
STOP-type keywords (English and Arabic) opt the sender out of that channel in every clinic that
has them as a patient (one number may be a patient of several clinics sharing a sender); START-type
keywords opt back in. Twilio's own long-code keyword handling uses the same words.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine

from app.delivery.optouts import patients_with_phone, set_channel_opt_in
from db.enums import Channel, OptOutSource
from db.session import system_session
from db.types import utcnow

STOP_WORDS = {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "opt-out",
              "توقف", "إيقاف", "ايقاف", "الغاء", "إلغاء", "الغاء الاشتراك", "إلغاء الاشتراك"}
START_WORDS = {"start", "yes", "unstop", "ابدأ", "ابدا", "بدء", "اشتراك"}


def keyword(body: str) -> str | None:
    """'stop' or 'start' when the whole message is an opt-out or opt-in keyword, else None."""
    text = re.sub(r"[\s\.\!\u061f\?]+", " ", body or "").strip().lower()
    if text in STOP_WORDS:
        return "stop"
    if text in START_WORDS:
        return "start"
    return None


def record_whatsapp_inbound(engine: Engine, phone: str) -> int:
    """The patient wrote on WhatsApp: their 24-hour window for free text opens now."""
    with system_session(engine) as session:
        patients = patients_with_phone(session, phone)
        for patient in patients:
            patient.whatsapp_last_inbound_at = utcnow()
        return len(patients)


def apply_keyword(engine: Engine, phone: str, channel: Channel, word: str) -> int:
    """Opt the sender out of (``stop``) or back into (``start``) ``channel``; how many patient records changed."""
    changed = 0
    with system_session(engine) as session:
        for patient in patients_with_phone(session, phone):
            changed += set_channel_opt_in(
                session, tenant_id=patient.tenant_id, patient_id=patient.id, channel=channel,
                opted_in=word == "start", source=OptOutSource.PATIENT_REPLY,
                reason=f"patient replied {word.upper()}",
            )
    return changed


def receive(engine: Engine, sender: str, body: str) -> str | None:
    """Apply an inbound message's effects; the keyword it carried (``stop``/``start``) or None."""
    channel = Channel.WHATSAPP if sender.startswith("whatsapp:") else Channel.SMS
    phone = sender.removeprefix("whatsapp:")
    if not phone:
        return None
    if channel == Channel.WHATSAPP:
        record_whatsapp_inbound(engine, phone)
    word = keyword(body)
    if word:
        apply_keyword(engine, phone, channel, word)
    return word
