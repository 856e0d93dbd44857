"""Provider status reports (callbacks, dev playback, lookups) applied forward-only and idempotently."""

from __future__ import annotations

import hashlib
import logging
import uuid
from decimal import Decimal

from sqlalchemy import Engine, or_, select, update

from app.config import Settings
from app.delivery.lifecycle import transition
from app.errors import AppError
from app.providers.credentials import unseal
from app.providers.error_codes import explain
from db.enums import ACCEPTED_STATUSES, FAILED_STATUSES, MessageStatus
from db.models import Message, ProviderCredential, Tenant
from db.session import system_session, tenant_session
from db.types import StrEnum

log = logging.getLogger(__name__)



class Outcome(StrEnum):
    """What applying one status report did."""

    APPLIED = "applied"  # the message moved (or learned its price, segments or provider id)
    DUPLICATE = "duplicate"  # a repeat, or a step backwards: nothing changed
    UNKNOWN_MESSAGE = "unknown_message"  # no message of ours has that id


def apply_provider_status(
    engine: Engine,
    *,
    provider_message_id: str | None,
    status: MessageStatus,
    error_code: str | None = None,
    price: Decimal | None = None,
    price_unit: str | None = None,
    segments: int | None = None,
    message_id: uuid.UUID | None = None,
    provider: str = "twilio",
    source: str = "callback",
) -> Outcome:
    """Apply one status report. A repeat, or a status behind the current one, changes nothing.

    The message is found by the provider's id, or by our own id (carried in the callback URL)
    when the report arrives before we recorded the provider's id.
    """
    with system_session(engine) as session:
        message = None
        if provider_message_id:
            message = session.scalar(select(Message).where(Message.provider_message_id == provider_message_id))
        if message is None and message_id is not None:
            message = session.get(Message, message_id)
            if message is not None and message.provider_message_id not in (None, provider_message_id):
                message = None  # the id in the URL does not belong to this provider message
        if message is None:
            return Outcome.UNKNOWN_MESSAGE
        changed = False
        extra: dict = {}
        if provider_message_id and message.provider_message_id is None:
            extra["provider_message_id"] = provider_message_id
        if price is not None and message.price is None:
            extra["price"], extra["price_unit"] = price, price_unit or message.price_unit
        if segments and not message.segments:
            extra["segments"] = segments
        values = dict(extra)
        if status in FAILED_STATUSES:
            info = explain(error_code)
            values["status_reason"] = info.title if info else "The provider could not deliver the message."
        elif status in ACCEPTED_STATUSES:
            values["status_reason"] = ""
        detail = f"{source}: {status.value}" + (f" (error {error_code})" if error_code else "")
        moved = transition(session, message.id, status, event=source, provider=provider, error_code=error_code,
                           detail=detail, values=values)
        changed = moved is not None
        if not changed and extra:
            session.execute(update(Message).where(Message.id == message.id).values(extra)
                            .execution_options(synchronize_session=False))
            changed = True
        return Outcome.APPLIED if changed else Outcome.DUPLICATE



# --- which clinic a callback is about (reads clinic ids only) ---------------------------------


class ClinicMismatch(ValueError):
    """The callback's ``mid`` and MessageSid name messages of two different clinics."""


def message_clinic(engine: Engine, message_id: uuid.UUID | None = None,
                   provider_message_id: str | None = None) -> uuid.UUID | None:
    """The clinic of the message a callback is about, from our id and/or the provider's; reads only the clinic id.

    None when neither names a known message; ClinicMismatch when they name two clinics.
    """
    conditions = []
    if message_id is not None:
        conditions.append(Message.id == message_id)
    if provider_message_id:
        conditions.append(Message.provider_message_id == provider_message_id)
    if not conditions:
        return None
    with system_session(engine) as session:
        clinics = list(session.scalars(select(Message.tenant_id).where(or_(*conditions)).distinct().limit(2)))
    if len(clinics) > 1:
        raise ClinicMismatch("the message id and the provider's id belong to different clinics")
    return clinics[0] if clinics else None


def clinic_twilio_token(engine: Engine, settings: Settings, clinic: uuid.UUID) -> str | None:
    """The clinic's own Twilio auth token when it stored Twilio credentials (None otherwise or unreadable)."""
    with tenant_session(engine, clinic) as session:
        sealed = session.scalar(select(ProviderCredential.encrypted).where(ProviderCredential.provider == "twilio"))
    if sealed is None:
        return None
    try:
        return unseal(settings.credentials_key, sealed).get("auth_token") or None
    except AppError:
        log.warning("clinic %s has Twilio credentials that cannot be read (CREDENTIALS_KEY changed?); "
                    "callbacks from its own account are refused", clinic)
        return None


def hash_token(token: str) -> str:
    """How a clinic's Unifonic delivery-report token is stored (only its hash is kept)."""
    return hashlib.sha256(token.encode()).hexdigest()


def clinic_of_dlr_token(engine: Engine, token: str) -> uuid.UUID | None:
    """The clinic whose delivery-report token this is (compares hashes only)."""
    if not token:
        return None
    with system_session(engine) as session:
        return session.scalar(select(Tenant.id).where(Tenant.unifonic_dlr_token_hash == hash_token(token)))


def belongs_to(engine: Engine, provider_message_id: str, tenant_id: uuid.UUID) -> bool:
    with system_session(engine) as session:
        owners = set(session.scalars(select(Message.tenant_id).where(
            Message.provider_message_id == provider_message_id)))
    return owners <= {tenant_id}  # an unknown id is acknowledged as unknown below
