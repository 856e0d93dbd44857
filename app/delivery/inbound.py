"""What an inbound message changes for the patients with the sender's number in one clinic: an opt-out
or opt-in of the channel (STOP / START), and WhatsApp's 24-hour window.

Reading the message (which words are STOP and START) is ``app.services.replies.intents``; finding the
clinic and storing the reply on its thread is ``app.services.replies.receive``. Both functions here
work in the caller's unit of work, inside one clinic.
"""

from __future__ import annotations

import datetime as dt

from app.delivery.optouts import patients_with_phone, set_channel_opt_in
from db.enums import Channel, OptOutSource
from db.tenancy import TenantSession


def record_whatsapp_inbound(session: TenantSession, phone: str, at: dt.datetime) -> int:
    """The patient wrote on WhatsApp at ``at``: their 24-hour window for free text opens then."""
    patients = patients_with_phone(session, phone, session.tenant_id)
    for patient in patients:
        if patient.whatsapp_last_inbound_at is None or patient.whatsapp_last_inbound_at < at:
            patient.whatsapp_last_inbound_at = at
    return len(patients)


def apply_keyword(session: TenantSession, phone: str, channel: Channel, opted_in: bool) -> int:
    """Opt the sender's patient records out of (STOP) or back into (START) ``channel``; how many changed."""
    word = "START" if opted_in else "STOP"
    return sum(
        set_channel_opt_in(session, tenant_id=patient.tenant_id, patient_id=patient.id, channel=channel,
                           opted_in=opted_in, source=OptOutSource.PATIENT_REPLY, reason=f"patient replied {word}")
        for patient in patients_with_phone(session, phone, session.tenant_id))
