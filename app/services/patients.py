"""The patient view: find a patient, see their contacts, preferences and history, change preferences.

"Why didn't they get it?" (``why_not_received``) is answered in plain words from the last
message's status and error and from the patient's preferences. Preference changes need a
reason, are kept in the patient's history (``preference_changes``) and audited.

Contacts (mobile, e-mail) and the record's language are corrected with ``change_contacts``: the
values are checked by the same rule a send uses (``messaging.normalise_recipient``), a stale form
(someone else saved first) is refused, the old and new values are audited, and the patient's
messages still waiting (scheduled or queued: not yet handed to a provider) are readdressed to
the new contact in the same transaction, or cancelled when the contact was removed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, update

from app.delivery.lifecycle import log_events, transition
from app.delivery.optouts import set_channel_opt_in
from app.errors import ConflictError, NotFoundError, ValidationError
from app.phones import phone_search_key
from app.providers.error_codes import explain
from app.search_text import clean_search, contains
from app.services import audit, tenants
from app.services.contacts import shown_contact
from app.services.explorer import clinic_of
from app.services.message_content import preferred_language
from app.services.messaging import normalise_recipient, rendered_again
from app.services.permissions import Actor, Permission, authorize
from db.enums import (
    CANCELLABLE,
    DELIVERED_STATUSES,
    WAITING_STATUSES,
    Channel,
    Language,
    MessageStatus,
    OptOutSource,
    Outcome,
    outcome,
)
from db.models import Message, NotificationPreference, Patient, PreferenceChange, User
from db.tenancy import TenantSession
from db.types import utcnow

SEARCH_LIMIT = 20
SOURCE_LABELS = {OptOutSource.STAFF: "staff", OptOutSource.PATIENT_REPLY: "the patient's reply",
                 OptOutSource.PROVIDER: "the provider", OptOutSource.IMPORT: "an import",
                 OptOutSource.SYSTEM: "the system"}


@dataclass(frozen=True)
class PatientSummary:
    id: uuid.UUID
    mrn: str | None
    name_en: str
    name_ar: str
    phone: str | None
    email: str | None
    language: Language
    version: str = ""  # the contacts as read; ``change_contacts`` refuses a form read before another change


@dataclass(frozen=True)
class Preferences:
    sms_opt_in: bool = True
    whatsapp_opt_in: bool = True
    email_opt_in: bool = True
    language: Language | None = None
    quiet_hours_start: dt.time | None = None
    quiet_hours_end: dt.time | None = None
    opted_out_at: dt.datetime | None = None
    opt_out_source: OptOutSource | None = None

    def allows(self, channel: Channel) -> bool:
        return bool(getattr(self, f"{channel.value}_opt_in"))


# How the history names a stored field and its values (stored: ``whatsapp_opt_in``, ``true``, ``ar``).
HISTORY_FIELDS = {
    "sms_opt_in": "SMS messages", "whatsapp_opt_in": "WhatsApp messages", "email_opt_in": "E-mail messages",
    "language": "Language", "quiet_hours_start": "Quiet hours from", "quiet_hours_end": "Quiet hours until",
}
_OPT_IN_WORDS = {"true": "yes", "false": "opted out"}
_LANGUAGE_WORDS = {Language.EN.value: "English", Language.AR.value: "Arabic"}


def messages_language(patient: PatientSummary, prefs: Preferences) -> str:
    """The language messages to the patient use, and why: ``Arabic (patient's preference)`` or
    ``English (as on the patient record)``; a template without Arabic text still goes in English."""
    chosen = preferred_language(prefs.language, patient.language) or Language.EN
    why = "patient's preference" if prefs.language else "as on the patient record"
    return f"{chosen.label} ({why})"


def history_value(field: str, value: str | None) -> str:
    """A stored history value as staff read it: ``yes`` / ``opted out``, ``Arabic``, ``22:00``, ``none``."""
    if field.endswith("_opt_in"):
        return _OPT_IN_WORDS.get(str(value).lower(), value or "—")
    if field == "language":
        return _LANGUAGE_WORDS.get(str(value).lower(), "as the patient record") if value else "as the patient record"
    return value or "none"


@dataclass(frozen=True)
class PreferenceHistoryItem:
    at: dt.datetime
    field: str
    old_value: str | None
    new_value: str | None
    source: OptOutSource
    reason: str
    changed_by: str

    @property
    def what(self) -> str:
        """``WhatsApp messages`` for ``whatsapp_opt_in``."""
        return HISTORY_FIELDS.get(self.field, self.field.replace("_", " ").capitalize())

    @property
    def before(self) -> str:
        return history_value(self.field, self.old_value)

    @property
    def after(self) -> str:
        return history_value(self.field, self.new_value)


@dataclass(frozen=True)
class PatientDetail:
    patient: PatientSummary
    preferences: Preferences
    history: list[PreferenceHistoryItem]
    why_not: list[str]


def _summary(actor: Actor, p: Patient) -> PatientSummary:
    return PatientSummary(p.id, p.mrn, p.name_en, p.name_ar, shown_contact(actor, p.phone_e164),
                          shown_contact(actor, p.email), Language(p.language), _version(p))


def _version(p: Patient) -> str:
    """A short fingerprint of the fields ``change_contacts`` edits (not of ``updated_at``, which an
    inbound WhatsApp message also moves)."""
    seen = "\x1f".join([p.phone_e164 or "", p.email or "", Language(p.language).value])
    return hashlib.sha256(seen.encode()).hexdigest()[:16]


def search_patients(session: TenantSession, actor: Actor, text: str, *, limit: int = SEARCH_LIMIT
                    ) -> list[PatientSummary]:
    """Patients by phone (however typed), e-mail, MRN, or part of the English or Arabic name."""
    authorize(session, actor, Permission.VIEW_PATIENTS)
    text = clean_search(text)
    if len(text) < 2:
        return []
    query = select(Patient).where(Patient.deleted_at.is_(None))
    phone = phone_search_key(text, clinic_of(session).region)
    if "@" in text:
        query = query.where(func.lower(Patient.email) == text.lower())
    elif phone:
        query = query.where(Patient.phone_e164 == phone)
    else:
        query = query.where(or_(Patient.mrn == text, contains(Patient.name_en, text),
                                contains(Patient.name_ar, text)))
    return [_summary(actor, p) for p in session.scalars(query.order_by(Patient.name_en).limit(limit))]


def _patient(session: TenantSession, patient_id: uuid.UUID) -> Patient:
    patient = session.scalar(select(Patient).where(Patient.id == patient_id, Patient.deleted_at.is_(None)))
    if patient is None:
        raise NotFoundError("That patient does not exist in your clinic.")
    return patient


def _preferences(session: TenantSession, patient_id: uuid.UUID) -> Preferences:
    pref = session.scalar(select(NotificationPreference).where(NotificationPreference.patient_id == patient_id))
    if pref is None:
        return Preferences()
    return Preferences(pref.sms_opt_in, pref.whatsapp_opt_in, pref.email_opt_in,
                       Language(pref.language) if pref.language else None, pref.quiet_hours_start,
                       pref.quiet_hours_end, pref.opted_out_at,
                       OptOutSource(pref.opt_out_source) if pref.opt_out_source else None)


def patient_detail(session: TenantSession, actor: Actor, patient_id: uuid.UUID) -> PatientDetail:
    """A patient's contacts, preferences, preference history (newest first) and why a message may not arrive."""
    authorize(session, actor, Permission.VIEW_PATIENTS)
    patient = _patient(session, patient_id)
    prefs = _preferences(session, patient_id)
    changes = session.execute(
        select(PreferenceChange, User.username).outerjoin(User, User.id == PreferenceChange.changed_by_id)
        .where(PreferenceChange.patient_id == patient_id).order_by(PreferenceChange.created_at.desc()).limit(200)
    ).all()
    history = [PreferenceHistoryItem(c.created_at, c.field, c.old_value, c.new_value, OptOutSource(c.source),
                                     c.reason, username or "") for c, username in changes]
    last = session.scalar(select(Message).where(Message.patient_id == patient_id, Message.is_test.is_(False))
                          .order_by(Message.created_at.desc(), Message.id.desc()).limit(1))
    clinic = clinic_of(session)
    return PatientDetail(_summary(actor, patient), prefs, history,
                         why_not_received(last, patient, prefs, ZoneInfo(clinic.timezone)))


def _when(value: dt.datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%d %b %Y, %H:%M") if value else "an unknown time"


def why_not_received(last: Message | None, patient: Patient, prefs: Preferences, zone: ZoneInfo) -> list[str]:
    """Plain sentences for the front desk: what happened to the last message and what stands in the way."""
    reasons: list[str] = []
    if last is None:
        reasons.append("No message has been sent to this patient yet.")
    else:
        channel = Channel(last.channel)
        status = MessageStatus(last.status)
        said = f"The last message ({channel.label}, {_when(last.created_at, zone)})"
        if status in DELIVERED_STATUSES:
            seen = " and read" if status == MessageStatus.READ else ""
            reasons.append(f"{said} was delivered{seen} at {_when(last.delivered_at or last.read_at, zone)}. "
                           "Ask the patient to check that device; it may be in a spam or promotions folder.")
        elif outcome(channel, status) == Outcome.DELIVERED:  # an e-mail the mail server accepted
            reasons.append(f"{said} was accepted by the patient's mail server at {_when(last.sent_at, zone)}; "
                           "e-mail gives no delivery receipt. Ask the patient to check the spam folder.")
        elif status == MessageStatus.SENT:
            reasons.append(f"{said} was handed to the carrier; the carrier has not confirmed delivery yet.")
        elif status in WAITING_STATUSES:
            when = f" for {_when(last.scheduled_at, zone)}" if last.scheduled_at else ""
            reasons.append(f"{said} has not gone out yet: it is {status.value}{when}.")
        elif status == MessageStatus.UNKNOWN:
            reasons.append(f"{said} may or may not have reached the provider; it is being checked with the "
                           "provider and is not resent blindly.")
        elif status == MessageStatus.CANCELLED:
            reasons.append(f"{said} was cancelled before it was sent.")
        elif status == MessageStatus.SUPPRESSED:
            why = (last.status_reason or "the patient cannot be messaged there").rstrip(".")
            reasons.append(f"{said} was not sent: {why}.")
        else:
            error = explain(last.error_code)
            meaning = f" {error.title} {error.action}" if error else f" {last.status_reason}".rstrip()
            reasons.append(f"{said} {status.value}.{meaning}")
        if channel != Channel.EMAIL and patient.phone_e164 and last.recipient != patient.phone_e164:
            reasons.append("It went to a different number than the one now on the patient record.")
    for channel in Channel:
        if not prefs.allows(channel):
            since = ""
            if prefs.opted_out_at and prefs.opt_out_source:
                since = f" (last opt-out {_when(prefs.opted_out_at, zone)}, by {SOURCE_LABELS[prefs.opt_out_source]})"
            reasons.append(f"The patient does not receive {channel.label} messages{since}.")
    if not patient.phone_e164:
        reasons.append("There is no mobile number on record, so SMS and WhatsApp cannot reach the patient.")
    if not patient.email:
        reasons.append("There is no e-mail address on record.")
    if prefs.quiet_hours_start and prefs.quiet_hours_end:
        reasons.append(f"Quiet hours {prefs.quiet_hours_start:%H:%M}-{prefs.quiet_hours_end:%H:%M}: messages "
                       "due then wait until the quiet hours end (urgent ones excepted).")
    return reasons


@dataclass(frozen=True)
class PreferenceUpdate:
    sms_opt_in: bool
    whatsapp_opt_in: bool
    email_opt_in: bool
    language: Language | None
    quiet_hours_start: dt.time | None
    quiet_hours_end: dt.time | None


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    return str(value.value if isinstance(value, Language) else value).lower()


def change_preferences(session: TenantSession, actor: Actor, patient_id: uuid.UUID, update: PreferenceUpdate,
                       *, reason: str) -> PatientDetail:
    """Apply what the patient asked for; every changed field is kept in the history with the reason."""
    authorize(session, actor, Permission.EDIT_PREFERENCES)
    reason = reason.strip()
    if len(reason) < 3:
        raise ValidationError("Say why the preferences change (e.g. 'patient asked by phone').", field="reason")
    if (update.quiet_hours_start is None) != (update.quiet_hours_end is None):
        raise ValidationError("Give both the start and the end of the quiet hours, or neither.",
                              field="quiet_hours_start")
    patient = _patient(session, patient_id)
    changed: list[str] = []
    for channel in Channel:
        if set_channel_opt_in(session, tenant_id=patient.tenant_id, patient_id=patient.id, channel=channel,
                              opted_in=getattr(update, f"{channel.value}_opt_in"), source=OptOutSource.STAFF,
                              reason=reason, changed_by_id=actor.user_id):
            changed.append(f"{channel.value}_opt_in")
    pref = session.scalar(select(NotificationPreference).where(NotificationPreference.patient_id == patient.id))
    if pref is None:
        pref = NotificationPreference(patient_id=patient.id)
        session.add(pref)
    now = utcnow()
    for name in ("language", "quiet_hours_start", "quiet_hours_end"):
        old, new = getattr(pref, name), getattr(update, name)
        if _text(old) != _text(new):
            setattr(pref, name, new)
            changed.append(name)
            session.add(PreferenceChange(patient_id=patient.id, field=name, old_value=_text(old),
                                         new_value=_text(new), source=OptOutSource.STAFF, reason=reason[:500],
                                         changed_by_id=actor.user_id, created_at=now))
    if not changed:
        raise ValidationError("Nothing was changed.")
    session.flush()
    audit.record(session, actor, "patient.preferences", object_type="patient", object_id=patient.id,
                 details={"changed": changed, "reason": reason[:500]})
    return patient_detail(session, actor, patient.id)


# Messages not yet handed to a provider: waiting, and still cancellable (``sending`` is not: a
# worker has claimed it and its request may already be out).
UNCLAIMED: tuple[MessageStatus, ...] = tuple(s for s in WAITING_STATUSES if s in CANCELLABLE)
PHONE_CHANNELS: tuple[Channel, ...] = (Channel.SMS, Channel.WHATSAPP)


@dataclass(frozen=True)
class ContactUpdate:
    """What the contact form sends: the mobile and e-mail as typed (empty: none) and the language."""

    phone: str
    email: str
    language: Language


@dataclass(frozen=True)
class ContactChange:
    patient: PatientDetail
    changed: tuple[str, ...]  # "phone", "email", "language"
    readdressed: int  # waiting messages now going to the new contact
    cancelled: int  # waiting messages cancelled because their contact was removed
    relanguaged: int = 0  # waiting template messages rendered again in the patient's new language


def _new_contact(raw: str, channel: Channel, region: str, field: str, what: str) -> str | None:
    text = (raw or "").strip()
    if not text:
        return None
    try:
        return normalise_recipient(text, channel, region)
    except ValidationError as exc:
        raise ValidationError(f"The {what} '{text[:60]}' cannot be used: {exc}.", field=field) from None


def change_contacts(session: TenantSession, actor: Actor, patient_id: uuid.UUID, contacts: ContactUpdate, *,
                    version: str) -> ContactChange:
    """Correct a patient's mobile number, e-mail address and language (front desk and admins).

    ``version`` is the ``PatientSummary.version`` the form was filled from: when someone else
    changed these fields since, nothing is saved (``ConflictError``). The numbers are normalised
    with the clinic's country. The patient's messages still waiting (``UNCLAIMED``) that were
    addressed to the old contact go to the new one, or are cancelled when it was removed; after a
    language change its waiting template messages (not a bulk job's) are rendered again in the
    language now chosen for the patient. Each such message gets a timeline event. The audit event
    keeps the old and new values.
    """
    authorize(session, actor, Permission.EDIT_PREFERENCES)
    patient = _patient(session, patient_id)
    stale = ConflictError("Someone else changed this patient's contacts while you were editing. "
                          "Nothing was saved: look at the contacts now shown and make your change again.")
    if _version(patient) != version:
        raise stale
    region = clinic_of(session).region
    new = {"phone": _new_contact(contacts.phone, Channel.SMS, region, "phone", "mobile number"),
           "email": _new_contact(contacts.email, Channel.EMAIL, region, "email", "e-mail address"),
           "language": Language(contacts.language)}
    old = {"phone": patient.phone_e164, "email": patient.email, "language": Language(patient.language)}
    changed = tuple(name for name in new if new[name] != old[name])
    if not changed:
        raise ValidationError("Nothing was changed.")
    moved = session.execute(
        _still_as_seen(patient.id, old).values(phone_e164=new["phone"], email=new["email"],
                                               language=new["language"], updated_at=utcnow())
    ).rowcount
    if moved != 1:
        raise stale
    readdressed = cancelled = 0
    for name, channels in (("phone", PHONE_CHANNELS), ("email", (Channel.EMAIL,))):
        if name in changed and old[name]:
            done = _readdress(session, patient, channels, old[name], new[name])
            readdressed, cancelled = (readdressed + done, cancelled) if new[name] else (readdressed,
                                                                                        cancelled + done)
    session.expire(patient)
    relanguaged = _render_in_new_language(session, patient.id) if "language" in changed else 0
    audit.record(session, actor, "patient.contacts", object_type="patient", object_id=patient.id, details={
        "changed": list(changed),
        **{name: {"from": _shown(old[name]), "to": _shown(new[name])} for name in changed},
        "messages_readdressed": readdressed, "messages_cancelled": cancelled,
        **({"messages_rendered_in_new_language": relanguaged} if "language" in changed else {}),
    })
    session.flush()
    return ContactChange(patient_detail(session, actor, patient.id), changed, readdressed, cancelled, relanguaged)


def _still_as_seen(patient_id: uuid.UUID, seen: dict[str, object]):  # type: ignore[no-untyped-def]
    """``UPDATE patients`` of one patient whose contacts are still ``seen`` (the optimistic check)."""
    return (update(Patient)
            .where(Patient.id == patient_id, Patient.deleted_at.is_(None),
                   Patient.phone_e164.is_not_distinct_from(seen["phone"]),
                   Patient.email.is_not_distinct_from(seen["email"]), Patient.language == seen["language"])
            .execution_options(synchronize_session=False))


def _shown(value: object) -> str | None:
    return value.value if isinstance(value, Language) else (str(value) if value is not None else None)


def _readdress(session: TenantSession, patient: Patient, channels: tuple[Channel, ...], old: str,
               new: str | None) -> int:
    """Point the patient's unclaimed messages to ``old`` at ``new`` (None: cancel them); how many."""
    now = utcnow()
    which = (Message.patient_id == patient.id, Message.channel.in_(channels), Message.recipient == old,
             Message.status.in_(UNCLAIMED))
    if new is not None:
        ids = list(session.scalars(update(Message).where(*which).values(recipient=new, updated_at=now)
                                   .returning(Message.id).execution_options(synchronize_session=False)))
        log_events(session, patient.tenant_id, ids, "readdressed", at=now,
                   detail="The patient's contact was corrected by staff; sent to the new one.")
        return len(ids)
    removed = "The patient's contact was removed by staff."
    ids = session.scalars(select(Message.id).where(*which))
    return sum(transition(session, message_id, MessageStatus.CANCELLED, event="cancelled", detail=removed,
                          only_from=set(UNCLAIMED), values={"status_reason": removed}, now=now) is not None
               for message_id in list(ids))


def _render_in_new_language(session: TenantSession, patient_id: uuid.UUID) -> int:
    """Render the patient's waiting template messages (not a bulk job's) again in the language the
    patient's record and preference now call for; how many changed. A message a worker claimed
    meanwhile keeps its text (the update is conditional on its status)."""
    patient = _patient(session, patient_id)
    tenant = tenants.current(session)
    preference = session.scalar(select(NotificationPreference).where(NotificationPreference.patient_id == patient_id))
    now = utcnow()
    changed = 0
    waiting = session.scalars(select(Message).where(
        Message.patient_id == patient_id, Message.status.in_(UNCLAIMED), Message.template_version_id.is_not(None),
        Message.bulk_job_id.is_(None)))
    for message in list(waiting):
        again = rendered_again(session, tenant, message, patient, preference, now=now)
        if again is None:
            continue
        moved = session.execute(update(Message).where(Message.id == message.id, Message.status.in_(UNCLAIMED))
                                .values(**again, updated_at=now).execution_options(synchronize_session=False))
        if moved.rowcount == 1:
            changed += 1
            log_events(session, patient.tenant_id, [message.id], "language_changed", at=now,
                       detail=f"The patient's language was changed by staff; the text is now in "
                              f"{'Arabic' if again['language'] == Language.AR else 'English'}.")
    return changed
