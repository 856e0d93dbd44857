"""The appointments API's resources: HL7 FHIR R4 ``Appointment`` in, and back out.

``parse_appointment`` validates a resource with the maintained ``fhir.resources`` models and turns
it into the one input both intake paths use (``records.AppointmentInput``); ``to_fhir`` writes an
appointment back, with the patient's answer to a reminder shown the FHIR way (the Patient
participant's status). ``upsert``, ``read`` and ``changed_since`` are what the HTTP routes
(``worker/fhir_api.py``) call for a key's clinic.

The models are ``fhir.resources.R4B``: R4B (4.3) left Appointment and Patient as R4 (4.0.1) has
them, so an R4 resource validates unchanged. The library checks structure, types and
cardinality; the codes we act on (the statuses) and the invariants we rely on are checked here.
Every problem is reported with its element's path (``Appointment.participant[0].status``).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.appointment import Appointment as FhirAppointment
from fhir.resources.R4B.appointment import AppointmentParticipant
from fhir.resources.R4B.patient import Patient as FhirPatient
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import and_, or_, select

from app.bidi import reads_right_to_left
from app.errors import ValidationError
from app.services.appointments import records
from app.services.appointments.records import AppointmentInput, PatientDetails
from app.services.permissions import Actor, Permission, authorize
from db.enums import AppointmentStatus, Language
from db.models import Appointment, Patient
from db.tenancy import TenantSession

RESOURCE = "Appointment"
DEFAULT_COUNT = 50
MAX_COUNT = 500

# FHIR Appointment.status -> ours. "waitlist" has no time yet: refused (422), never guessed.
STATUS_IN: dict[str, AppointmentStatus] = {
    "proposed": AppointmentStatus.BOOKED, "pending": AppointmentStatus.BOOKED, "booked": AppointmentStatus.BOOKED,
    "arrived": AppointmentStatus.BOOKED, "checked-in": AppointmentStatus.BOOKED,
    "cancelled": AppointmentStatus.CANCELLED, "entered-in-error": AppointmentStatus.CANCELLED,
    "noshow": AppointmentStatus.NO_SHOW, "fulfilled": AppointmentStatus.COMPLETED,
}
REFUSED_STATUSES = {"waitlist": "a waitlisted appointment has no time yet; send it once it is booked"}
STATUS_OUT: dict[AppointmentStatus, str] = {
    AppointmentStatus.BOOKED: "booked", AppointmentStatus.CONFIRMED: "booked",
    AppointmentStatus.CANCELLED: "cancelled", AppointmentStatus.COMPLETED: "fulfilled",
    AppointmentStatus.NO_SHOW: "noshow",
}
PARTICIPANT_STATUSES = frozenset({"accepted", "declined", "tentative", "needs-action"})
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_PATIENT_URL = re.compile(r"(?:^|/)Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$")
_DEFAULT_DURATION = 20


@dataclass(frozen=True)
class Issue:
    """One problem with a resource: where (a FHIRPath expression) and what."""

    expression: str
    message: str


class ResourceError(ValidationError):
    """A resource we refuse; ``issues`` lists each problem with its element."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = tuple(issues)
        super().__init__("; ".join(f"{i.expression}: {i.message}" for i in self.issues),
                         field=self.issues[0].expression if self.issues else None)


class InvalidResource(ResourceError):
    """Not a valid FHIR R4 Appointment (HTTP 400)."""


class UnacceptableResource(ResourceError):
    """A valid Appointment this clinic cannot take (HTTP 422): waitlisted, an unknown patient, no start ..."""


def _invalid(expression: str, message: str) -> InvalidResource:
    return InvalidResource([Issue(expression, message)])


def _unacceptable(expression: str, message: str) -> UnacceptableResource:
    return UnacceptableResource([Issue(expression, message)])


# --- validation -----------------------------------------------------------------------------------


def _path(loc: Sequence[Any]) -> str:
    """pydantic's ``('participant', 0, 'actor')`` as FHIRPath: ``Appointment.participant[0].actor``."""
    path = RESOURCE
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "resource_type":
            path += ".resourceType"
        elif isinstance(part, str) and part.endswith("__ext"):
            path += f"._{part.removesuffix('__ext')}"
        else:
            path += f".{part}"
    return path


def _said(error: dict[str, Any]) -> str:
    kind, message = str(error.get("type", "")), str(error.get("msg", ""))
    if kind in ("missing", "model_field_validation.missing"):
        return "required, but missing"
    if kind == "extra_forbidden":
        return "not an element FHIR R4 defines here"
    if "Instant value" in message or "DateTime value" in message:
        return "not a FHIR instant: a date and time with its time zone, e.g. 2026-12-08T09:00:00+03:00"
    return message.removeprefix("Value error, ")


def _check_shape(payload: Any) -> None:
    """What the library would not say plainly (or would fail on): the resource type, contained types."""
    if not isinstance(payload, dict):
        raise _invalid(RESOURCE, "the body must be a JSON object: one FHIR Appointment resource")
    kind = payload.get("resourceType")
    if kind != RESOURCE:
        raise _invalid("resourceType", f"expected an Appointment resource, not {str(kind)[:40]!r}")
    contained = payload.get("contained")
    for index, resource in enumerate(contained if isinstance(contained, list) else []):
        name = resource.get("resourceType") if isinstance(resource, dict) else None
        try:
            get_fhir_model_class(str(name))
        except (ValueError, KeyError):
            raise _invalid(f"{RESOURCE}.contained[{index}].resourceType",
                           f"{str(name)[:40]!r} is not a FHIR resource type") from None
    for name in ("start", "end"):
        if name in payload and not isinstance(payload[name], str):
            raise _invalid(f"{RESOURCE}.{name}", "a FHIR instant is written as text, e.g. 2026-12-08T09:00:00+03:00")


def validate(payload: Any) -> FhirAppointment:
    """The payload as a FHIR R4 Appointment, or ``InvalidResource`` listing every problem."""
    _check_shape(payload)
    try:
        resource = FhirAppointment.model_validate(payload)
    except PydanticValidationError as exc:
        raise InvalidResource([Issue(_path(e["loc"]), _said(e)) for e in exc.errors()]) from None
    except (KeyError, TypeError, ValueError) as exc:  # the library's own checks outside pydantic's
        raise _invalid(RESOURCE, f"does not validate ({type(exc).__name__})") from None
    except RecursionError:  # JSON the parser took, nested deeper than the models validate
        raise _invalid(RESOURCE, "the resource is nested too deeply to validate (elements within elements "
                                 "hundreds of levels down)") from None
    issues: list[Issue] = []
    if resource.status not in STATUS_IN and resource.status not in REFUSED_STATUSES:
        issues.append(Issue(f"{RESOURCE}.status", f"{resource.status[:40]!r} is not an Appointment status "
                                                  f"(one of {', '.join([*STATUS_IN, *REFUSED_STATUSES])})"))
    if not resource.participant:
        issues.append(Issue(f"{RESOURCE}.participant", "at least one participant is required"))
    for index, participant in enumerate(resource.participant or []):
        if participant.status not in PARTICIPANT_STATUSES:
            issues.append(Issue(f"{RESOURCE}.participant[{index}].status",
                                f"{participant.status[:40]!r} is not one of {', '.join(sorted(PARTICIPANT_STATUSES))}"))
        reference = participant.actor.reference if participant.actor is not None else None
        if reference and reference.startswith("#") and _contained(resource, reference) is None:
            issues.append(Issue(f"{RESOURCE}.participant[{index}].actor.reference",
                                f"{reference[:40]!r} names no contained resource (FHIR invariant dom-3)"))
    if resource.end is not None and resource.start is None:
        issues.append(Issue(f"{RESOURCE}.start", "an end needs a start (FHIR invariant app-2)"))
    if resource.start is not None and resource.end is not None and resource.end <= resource.start:
        issues.append(Issue(f"{RESOURCE}.end", "must be after the start"))
    if issues:
        raise InvalidResource(issues)
    return resource


# --- FHIR -> ours ---------------------------------------------------------------------------------


def _concept_text(concept: Any) -> str:
    """A CodeableConcept in words: its text, else its first coding's display, else its code."""
    if concept is None:
        return ""
    if concept.text:
        return str(concept.text).strip()
    for coding in concept.coding or []:
        if coding.display or coding.code:
            return str(coding.display or coding.code).strip()
    return ""


def _first_concept(concepts: Sequence[Any] | None) -> str:
    return next((text for text in map(_concept_text, concepts or []) if text), "")


def _source_id(resource: FhirAppointment) -> str:
    for identifier in resource.identifier or []:
        return str(identifier.value or "").strip()
    return str(resource.id or "").strip()


def _contained(resource: FhirAppointment, reference: str) -> Any | None:
    wanted = reference.removeprefix("#")
    return next((c for c in resource.contained or [] if c.id == wanted), None)


def _kind_of(resource: FhirAppointment, participant: AppointmentParticipant) -> str:
    """Which kind of resource a participant is: Patient, Practitioner, Location ... ("" when unsaid)."""
    actor = participant.actor
    if actor is None:
        return ""
    reference = actor.reference or ""
    if reference.startswith("#"):
        found = _contained(resource, reference)
        return found.get_resource_type() if found is not None else ""
    match = re.search(r"(?:^|/)([A-Z][A-Za-z]+)/[^/]+(?:/_history/[^/]+)?$", reference)
    return match.group(1) if match else str(actor.type or "")


def _human_names(patient: FhirPatient) -> tuple[str, str]:
    """(English, Arabic) names of a Patient, told apart by their script."""
    english = arabic = ""
    for name in patient.name or []:
        if name.use == "old":
            continue
        text = (name.text or " ".join([*(name.given or []), name.family or ""])).strip()
        text = " ".join(text.split())
        if not text:
            continue
        if reads_right_to_left(text):
            arabic = arabic or text
        else:
            english = english or text
    return english, arabic


def _telecom(patient: FhirPatient, system: str) -> str:
    points = [p for p in patient.telecom or [] if p.value and p.use != "old"
              and (p.system == system or (system == "phone" and p.system == "sms"))]
    points.sort(key=lambda p: (p.use != "mobile", p.rank or 10**6))
    return str(points[0].value).strip() if points else ""


def _language(patient: FhirPatient) -> Language | None:
    spoken = sorted(patient.communication or [], key=lambda c: not c.preferred)
    for communication in spoken:
        codes = [c.code for c in communication.language.coding or [] if c.code]
        for code in codes or [communication.language.text or ""]:
            base = str(code).split("-")[0].strip().lower()
            if base in ("ar", "en"):
                return Language(base)
    return None


def _mrn(patient: FhirPatient) -> str:
    """The medical record number: the identifier typed MR, else the first identifier."""
    identifiers = [i for i in patient.identifier or [] if i.value and i.use != "old"]
    typed = [i for i in identifiers if i.type and any(c.code == "MR" for c in i.type.coding or [])]
    chosen = (typed or identifiers or [None])[0]
    return str(chosen.value).strip() if chosen is not None else ""


def _patient(resource: FhirAppointment) -> tuple[str, PatientDetails | None]:
    """The appointment's patient: (MRN, details when the resource carries them)."""
    patients = [(i, p) for i, p in enumerate(resource.participant or []) if _kind_of(resource, p) == "Patient"]
    if not patients:
        raise _unacceptable(f"{RESOURCE}.participant",
                            "no Patient participant: say whose appointment it is (a contained Patient, "
                            "'Patient/<MRN>', or a Patient identifier)")
    if len(patients) > 1:
        raise _unacceptable(f"{RESOURCE}.participant[{patients[1][0]}]",
                            "more than one Patient participant; an appointment here is for one patient")
    index, participant = patients[0]
    where = f"{RESOURCE}.participant[{index}].actor"
    actor = participant.actor
    reference = actor.reference or ""
    if reference.startswith("#"):
        contained = _contained(resource, reference)
        if not isinstance(contained, FhirPatient):
            raise _invalid(f"{where}.reference", f"{reference[:40]!r} names no contained Patient")
        mrn = _mrn(contained)
        if not mrn:
            raise _unacceptable(f"{RESOURCE}.contained.where(id='{contained.id}').identifier",
                                "the contained Patient has no identifier (the clinic's medical record number)")
        name_en, name_ar = _human_names(contained)
        return mrn, PatientDetails(name_en=name_en, name_ar=name_ar, phone=_telecom(contained, "phone"),
                                   email=_telecom(contained, "email"), language=_language(contained))
    if reference:
        match = _PATIENT_URL.search(reference)
        if match is None:
            raise _unacceptable(f"{where}.reference", f"{reference[:60]!r} is not 'Patient/<MRN>'")
        return match.group(1), None
    if actor.identifier is not None and actor.identifier.value:
        return str(actor.identifier.value).strip(), None
    raise _unacceptable(where, "the Patient participant has neither a reference nor an identifier")


def _doctor(resource: FhirAppointment) -> tuple[str, str]:
    """(English, Arabic) name of the first Practitioner participant that has a name."""
    for participant in resource.participant or []:
        if _kind_of(resource, participant) not in ("Practitioner", "PractitionerRole"):
            continue
        display = " ".join(str(participant.actor.display or "").split())
        reference = participant.actor.reference or ""
        if not display and reference.startswith("#"):
            found = _contained(resource, reference)
            names = getattr(found, "name", None) or []
            display = next((" ".join((n.text or " ".join([*(n.prefix or []), *(n.given or []), n.family or ""]))
                                     .split()) for n in names), "")
        if display:
            return ("", display) if reads_right_to_left(display) else (display, "")
    return "", ""


def _location(resource: FhirAppointment) -> str:
    for participant in resource.participant or []:
        if _kind_of(resource, participant) == "Location" and participant.actor.display:
            return " ".join(str(participant.actor.display).split())
    return ""


def _duration(resource: FhirAppointment) -> int:
    if resource.start is not None and resource.end is not None:
        return round((resource.end - resource.start).total_seconds() / 60)
    return int(resource.minutesDuration or _DEFAULT_DURATION)


def parse_appointment(payload: Any, *, source_id: str | None = None) -> AppointmentInput:
    """A FHIR R4 Appointment (parsed JSON) as an appointment input.

    ``source_id``: the id the request's URL names (a PUT); the resource must say the same.
    Raises ``InvalidResource`` (not valid FHIR) or ``UnacceptableResource`` (valid, but not
    something we can take: waitlisted, no patient, no start, a modifier extension we do not know).
    """
    resource = validate(payload)
    if resource.modifierExtension:
        raise _unacceptable(f"{RESOURCE}.modifierExtension",
                            "this server does not understand the modifier extension, so it cannot accept the resource")
    if resource.status in REFUSED_STATUSES:
        raise _unacceptable(f"{RESOURCE}.status", REFUSED_STATUSES[resource.status])
    own = _source_id(resource)
    if source_id is not None and own and own != source_id:
        raise _unacceptable(f"{RESOURCE}.identifier[0].value" if resource.identifier else f"{RESOURCE}.id",
                            f"the resource's id {own[:60]!r} is not the one in the address ({source_id[:60]!r})")
    own = own or (source_id or "")
    if not own:
        raise _unacceptable(f"{RESOURCE}.identifier", "no identifier: give the appointment's id in your system")
    if resource.start is None:
        raise _unacceptable(f"{RESOURCE}.start", "the appointment has no start time")
    if not records.EARLIEST_START <= resource.start < records.LATEST_START:  # compared before any conversion
        raise _unacceptable(f"{RESOURCE}.start", f"{resource.start.date().isoformat()} is not a date this system "
                                                 f"takes ({records.EARLIEST_START.year} to "
                                                 f"{records.LATEST_START.year - 1})")
    mrn, details = _patient(resource)
    doctor_en, doctor_ar = _doctor(resource)
    return AppointmentInput(
        source_id=own, patient_mrn=mrn, starts_at=resource.start.astimezone(dt.UTC),
        duration_minutes=_duration(resource),
        appointment_type=_concept_text(resource.appointmentType) or _first_concept(resource.serviceType),
        department=_first_concept(resource.specialty), doctor_name_en=doctor_en, doctor_name_ar=doctor_ar,
        location=_location(resource), status=STATUS_IN[resource.status], patient=details)


# --- ours -> FHIR ---------------------------------------------------------------------------------


def _instant(value: dt.datetime, timespec: str = "seconds") -> str:
    return value.astimezone(dt.UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def patient_answer(appointment: Appointment) -> str:
    """The patient's answer as FHIR says it (the Patient participant's status)."""
    if appointment.status == AppointmentStatus.CONFIRMED:
        return "accepted"
    if appointment.status == AppointmentStatus.CANCELLED and appointment.status_source == "reply":
        return "declined"
    return "needs-action"


def _patient_reference(mrn: str | None) -> dict[str, Any]:
    if mrn and _FHIR_ID.fullmatch(mrn):
        return {"reference": f"Patient/{mrn}", "type": "Patient"}
    return {"type": "Patient", "identifier": {"value": mrn or ""}}


def to_fhir(appointment: Appointment, patient: Patient | None) -> dict[str, Any]:
    """An appointment as a FHIR R4 Appointment resource (JSON-ready), as the clinic system reads it back."""
    source_id = appointment.source_id or str(appointment.id)
    resource: dict[str, Any] = {"resourceType": RESOURCE}
    if _FHIR_ID.fullmatch(source_id):
        resource["id"] = source_id
    # to the microsecond: the clinic system asks for changes after the last one it read (_lastUpdated=gt...)
    resource["meta"] = {"lastUpdated": _instant(appointment.updated_at, "microseconds")}
    resource["identifier"] = [{"value": source_id}]
    resource["status"] = STATUS_OUT[AppointmentStatus(appointment.status)]
    answer = patient_answer(appointment)
    if answer == "declined":
        resource["cancelationReason"] = {"text": "Cancelled by the patient's reply"}
    if appointment.appointment_type:
        resource["appointmentType"] = {"text": appointment.appointment_type}
    if appointment.department:
        resource["specialty"] = [{"text": appointment.department}]
    resource["start"] = _instant(appointment.starts_at)
    resource["end"] = _instant(appointment.starts_at + dt.timedelta(minutes=appointment.duration_minutes))
    resource["minutesDuration"] = appointment.duration_minutes
    participants: list[dict[str, Any]] = [
        {"actor": _patient_reference(patient.mrn if patient is not None else None), "required": "required",
         "status": answer}]
    doctor = appointment.doctor_name_en or appointment.doctor_name_ar
    if doctor:
        participants.append({"actor": {"type": "Practitioner", "display": doctor}, "status": "accepted"})
    if appointment.location:
        participants.append({"actor": {"type": "Location", "display": appointment.location}, "status": "accepted"})
    resource["participant"] = participants
    return resource


# --- the API's unit of work -----------------------------------------------------------------------


@dataclass(frozen=True)
class Upserted:
    created: bool
    changed: bool  # False: the stored appointment already said all this (a repeated PUT)
    resource: dict[str, Any]


def _resource_of(session: TenantSession, condition: Any) -> dict[str, Any] | None:
    row = session.execute(select(Appointment, Patient).outerjoin(Patient, Patient.id == Appointment.patient_id)
                          .where(condition)).first()
    return to_fhir(row[0], row[1]) if row is not None else None


def upsert(session: TenantSession, actor: Actor, payload: Any, *, source_id: str | None = None) -> Upserted:
    """Create or update the appointment a FHIR resource describes (through ``records.apply``, like an
    upload), keyed by its id in the clinic's system; the stored resource comes back."""
    authorize(session, actor, Permission.IMPORT_APPOINTMENTS)
    item = parse_appointment(payload, source_id=source_id)
    result = records.apply(session, actor, [item], source="api")
    if result.refused:
        raise _unacceptable(RESOURCE, result.refused[0].reason)
    resource = _resource_of(session, Appointment.source_id == item.source_id)
    if resource is None:  # apply wrote or found it in this transaction: not reachable
        raise _unacceptable(RESOURCE, "the appointment could not be stored")
    return Upserted(created=result.created == 1, changed=result.written > 0, resource=resource)


def read(session: TenantSession, actor: Actor, source_id: str) -> dict[str, Any] | None:
    """The clinic's appointment with this id in its system, as FHIR; None when it has none."""
    authorize(session, actor, Permission.VIEW_APPOINTMENTS)
    return _resource_of(session, Appointment.source_id == source_id)


@dataclass(frozen=True)
class Cursor:
    """Where a page of ``changed_since`` ends: the last appointment's (updated_at, id)."""

    updated_at: dt.datetime
    id: uuid.UUID

    def token(self) -> str:
        return base64.urlsafe_b64encode(f"{self.updated_at.isoformat()}|{self.id}".encode()).decode().rstrip("=")

    @classmethod
    def from_token(cls, token: str) -> Cursor:
        try:
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            when, row_id = text.split("|")
            updated_at = dt.datetime.fromisoformat(when)
            if updated_at.tzinfo is None:
                raise ValueError
            return cls(updated_at, uuid.UUID(row_id))
        except (ValueError, UnicodeDecodeError):
            raise _invalid("_page", "not a page token this server gave out; start again from _lastUpdated") from None


@dataclass(frozen=True)
class ChangedPage:
    resources: list[dict[str, Any]]
    next_cursor: Cursor | None  # None on the last page


def changed_since(session: TenantSession, actor: Actor, since: dt.datetime | None, *, inclusive: bool = False,
                  count: int = DEFAULT_COUNT, after: Cursor | None = None) -> ChangedPage:
    """The clinic's appointments changed after ``since`` (at or after, ``inclusive``), oldest change
    first, ``count`` at a time (keyset: pass ``next_cursor`` back as ``after``)."""
    authorize(session, actor, Permission.VIEW_APPOINTMENTS)
    count = max(1, min(int(count), MAX_COUNT))
    query = (select(Appointment, Patient).outerjoin(Patient, Patient.id == Appointment.patient_id)
             .where(Appointment.source_id.is_not(None))
             .order_by(Appointment.updated_at, Appointment.id).limit(count + 1))
    if since is not None:
        query = query.where(Appointment.updated_at >= since if inclusive else Appointment.updated_at > since)
    if after is not None:
        query = query.where(or_(Appointment.updated_at > after.updated_at,
                                and_(Appointment.updated_at == after.updated_at, Appointment.id > after.id)))
    rows = session.execute(query).all()
    more = len(rows) > count
    rows = rows[:count]
    last = rows[-1][0] if rows and more else None
    return ChangedPage([to_fhir(a, p) for a, p in rows],
                       Cursor(last.updated_at, last.id) if last is not None else None)
