"""The one upsert of appointments from the clinic's own system, used by the FHIR API and the upload.

``apply`` takes a batch of ``AppointmentInput`` and, in the caller's transaction, creates the
appointments it has not seen (keyed by the clinic system's id, ``source_id``, unique per clinic),
changes those that moved (a reschedule is a change of ``starts_at``), cancels those whose status
is now cancelled and leaves the rest alone. Each input that cannot be used is refused with a
reason a clerk can act on; a refused input never blocks the valid ones. ``preview`` works out the
same without writing (the upload's review); ``apply`` works it out again from the rows as they
are when it runs, so a review that has gone stale cannot write stale data.

Patients are found by MRN in the session's clinic only. An unknown MRN with the patient's details
creates the patient; without them the input is refused. An existing patient's name and contacts
are never changed by an appointment feed: they are corrected on the Patients page, where the
change is checked and audited, so a clinic system cannot silently redirect a patient's messages.

Status: the source's status is applied, with two exceptions that keep what the patient told us.
A confirmed appointment sent again as "booked" stays confirmed, unless it was rescheduled (the
patient confirmed another time: it is booked again). An appointment the patient cancelled by
reply, sent again as "booked" at the same time, stays cancelled (the clinic system has not yet
read the cancellation back). ``set_status`` is the one change of a single appointment's status
(a reply, the front desk, the API), audited with the old and new status.

Big batches are set-based: existing appointments and patients are read in chunked ``IN`` queries,
new rows are inserted and changed rows updated by primary key in bulk, one audit event per batch.
"""

from __future__ import annotations

import datetime as dt
import importlib
import uuid
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from app.errors import ConflictError, NotFoundError, ValidationError
from app.services import audit, tenants
from app.services.messaging import normalise_recipient
from app.services.permissions import Actor, Permission, authorize
from db.enums import OPEN_APPOINTMENT_STATUSES, AppointmentStatus, Channel, Language
from db.models import Appointment, Patient
from db.tenancy import TenantSession
from db.types import StrEnum, utcnow

SOURCES = ("api", "upload")  # where ``apply``'s batches come from
STATUS_SOURCES = ("reply", "staff", "api")  # who changes one appointment's status with ``set_status``
CHUNK = 5_000  # ids per IN query (well under SQLite's limit of bound parameters)
PG_CHUNK = 50_000  # ids per array parameter on PostgreSQL
MAX_DURATION_MINUTES = 24 * 60
# The starts taken: far enough either way for any real booking or history, and clear of the ends of
# Python's calendar (year 1 and 9999), where an end time or a reminder time cannot be computed.
EARLIEST_START = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST_START = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
# Stored lengths (db.models); longer text is refused with its field named, never cut.
_LIMITS = {"source_id": 128, "patient_mrn": 64, "appointment_type": 120, "department": 120,
           "doctor_name_en": 200, "doctor_name_ar": 200, "location": 200}
_LABELS = {"source_id": "the appointment id", "patient_mrn": "the MRN", "appointment_type": "the appointment type",
           "department": "the department", "doctor_name_en": "the doctor's name",
           "doctor_name_ar": "the doctor's Arabic name", "location": "the location"}
# What an upsert compares; a difference in any of them is a change.
COMPARED = ("patient_id", "starts_at", "duration_minutes", "appointment_type", "department", "doctor_name_en",
            "doctor_name_ar", "location", "status")
_READ = (Appointment.id, Appointment.source_id, Appointment.status_changed_at, Appointment.status_source,
         *(getattr(Appointment, name) for name in COMPARED))
_COMPARED_AT = 4  # where COMPARED's values start in a row of _READ


@dataclass(frozen=True)
class PatientDetails:
    """Who the patient is, for creating a patient the clinic does not have yet. ``phone`` is as the
    clinic system wrote it (normalised to E.164 in the clinic's region); ``language`` None: the clinic's."""

    name_en: str = ""
    name_ar: str = ""
    phone: str = ""
    email: str = ""
    language: Language | None = None

    @property
    def given(self) -> bool:
        return any((self.name_en.strip(), self.name_ar.strip(), self.phone.strip(), self.email.strip()))


@dataclass(frozen=True)
class AppointmentInput:
    """One appointment as the clinic's system describes it; ``starts_at`` is timezone-aware."""

    source_id: str
    patient_mrn: str
    starts_at: dt.datetime | None
    duration_minutes: int = 20
    appointment_type: str = ""
    department: str = ""
    doctor_name_en: str = ""
    doctor_name_ar: str = ""
    location: str = ""
    status: AppointmentStatus = AppointmentStatus.BOOKED
    patient: PatientDetails | None = None


class Kind(StrEnum):
    """What an input does to the clinic's appointments."""

    CREATE = "create"
    CHANGE = "change"
    CANCEL = "cancel"  # a change that moves the status to cancelled
    UNCHANGED = "unchanged"
    REFUSED = "refused"

    @property
    def label(self) -> str:
        return {"create": "New", "change": "Changed", "cancel": "Cancelled", "unchanged": "Unchanged",
                "refused": "Refused"}[self.value]


@dataclass(frozen=True)
class Refusal:
    index: int  # position in the batch (0-based)
    source_id: str
    reason: str


@dataclass(frozen=True)
class Planned:
    """What one input will do: its kind, the fields it changes and the appointment as stored before."""

    index: int
    kind: Kind
    source_id: str = ""
    appointment_id: uuid.UUID | None = None
    changed: tuple[str, ...] = ()  # names in COMPARED
    before: dict[str, Any] = field(default_factory=dict)  # the stored values of ``changed``
    status: AppointmentStatus | None = None  # the status it will have
    reason: str = ""  # why it is refused
    new_patient: bool = False  # this input creates its patient


@dataclass(frozen=True)
class Preview:
    items: list[Planned]

    def count(self, kind: Kind) -> int:
        return sum(1 for item in self.items if item.kind == kind)

    @property
    def refused(self) -> list[Refusal]:
        return [Refusal(i.index, i.source_id, i.reason) for i in self.items if i.kind == Kind.REFUSED]

    @property
    def new_patients(self) -> int:
        return sum(1 for item in self.items if item.new_patient)


@dataclass
class ApplyResult:
    created: int = 0
    changed: int = 0
    unchanged: int = 0
    cancelled: int = 0
    patients_created: int = 0
    refused: list[Refusal] = field(default_factory=list)
    appointment_ids: list[uuid.UUID] = field(default_factory=list)  # created, changed or cancelled

    @property
    def written(self) -> int:
        return self.created + self.changed + self.cancelled


# --- working out what a batch does ----------------------------------------------------------------


def _chunks(session: TenantSession, values: Iterable[Any]) -> Iterator[Sequence[Any]]:
    ordered = sorted(set(values))
    size = PG_CHUNK if session.get_bind().dialect.name == "postgresql" else CHUNK
    for start in range(0, len(ordered), size):
        yield ordered[start:start + size]


def _among(session: TenantSession, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN values``: on PostgreSQL one array parameter (``= ANY``), so a long list costs one
    bound value instead of thousands; elsewhere an ordinary IN."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam("among", list(values), type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


def _existing(session: TenantSession, tenant_id: uuid.UUID, source_ids: Iterable[str], *, lock: bool
              ) -> dict[str, Any]:
    """The clinic's stored appointments with these source ids (rows of ``_READ``), by source id."""
    found: dict[str, Any] = {}
    for chunk in _chunks(session, source_ids):
        query = select(*_READ).where(Appointment.tenant_id == tenant_id, _among(session, Appointment.source_id, chunk))
        for row in session.execute(query.with_for_update() if lock else query):
            found[row.source_id] = row
    return found


def _patients(session: TenantSession, tenant_id: uuid.UUID, mrns: Iterable[str]) -> dict[str, list[uuid.UUID]]:
    """The clinic's patients with these MRNs (deleted ones left out), by MRN."""
    found: dict[str, list[uuid.UUID]] = {}
    for chunk in _chunks(session, mrns):
        for patient_id, mrn in session.execute(select(Patient.id, Patient.mrn).where(
                Patient.tenant_id == tenant_id, _among(session, Patient.mrn, chunk), Patient.deleted_at.is_(None))):
            found.setdefault(mrn, []).append(patient_id)
    return found


def _text_problem(item: AppointmentInput) -> str | None:
    values = (item.source_id, item.patient_mrn, item.appointment_type, item.department, item.doctor_name_en,
              item.doctor_name_ar, item.location)  # in _LIMITS' order
    for (name, limit), value in zip(_LIMITS.items(), values, strict=True):
        if not isinstance(value, str):
            return f"{_LABELS[name]} is not text"
        if "\x00" in value:
            return f"{_LABELS[name]} contains a NUL character (\\0), which is not text"
        if len(value) > limit:
            return f"{_LABELS[name]} is {len(value):,} characters long; at most {limit}"
    return None


def _problem(item: AppointmentInput) -> str | None:
    """Why an input cannot be used on its own (before the clinic's data is consulted), or None."""
    if not isinstance(item.source_id, str) or not item.source_id.strip():
        return "the appointment id is missing"
    if not isinstance(item.patient_mrn, str) or not item.patient_mrn.strip():
        return "the patient's MRN is missing"
    if (problem := _text_problem(item)) is not None:
        return problem
    if item.starts_at is None:
        return "the start (date and time) is missing"
    if not isinstance(item.starts_at, dt.datetime) or item.starts_at.tzinfo is None:
        return "the start has no time zone"
    if not EARLIEST_START <= item.starts_at < LATEST_START:
        return (f"the start {item.starts_at.date().isoformat()} is not a date this system takes "
                f"({EARLIEST_START.year} to {LATEST_START.year - 1})")
    if isinstance(item.duration_minutes, bool) or not isinstance(item.duration_minutes, int) or not (
            1 <= item.duration_minutes <= MAX_DURATION_MINUTES):
        return f"the duration must be a whole number of minutes from 1 to {MAX_DURATION_MINUTES:,}"
    if not isinstance(item.status, AppointmentStatus):
        return "the status is not one this system knows"
    return None


def next_status(stored: AppointmentStatus, stored_source: str, incoming: AppointmentStatus, *,
                rescheduled: bool) -> AppointmentStatus:
    """The status an appointment gets when its source sends ``incoming`` (see the module docstring)."""
    if incoming == AppointmentStatus.BOOKED and not rescheduled and (
            stored == AppointmentStatus.CONFIRMED
            or (stored == AppointmentStatus.CANCELLED and stored_source == "reply")):
        return stored
    return incoming


def _values(item: AppointmentInput, patient_id: uuid.UUID) -> dict[str, Any]:
    """The stored fields an input gives, in COMPARED's order (``status`` is added after them)."""
    return {"patient_id": patient_id, "starts_at": item.starts_at.astimezone(dt.UTC),  # type: ignore[union-attr]
            "duration_minutes": item.duration_minutes, "appointment_type": item.appointment_type.strip(),
            "department": item.department.strip(), "doctor_name_en": item.doctor_name_en.strip(),
            "doctor_name_ar": item.doctor_name_ar.strip(), "location": item.location.strip()}


def _new_patient_problem(details: PatientDetails | None, region: str) -> str | None:
    if details is None or not details.given:
        return None
    if not (details.name_en.strip() or details.name_ar.strip()):
        return "to add the patient, give the patient's name"
    for name, limit in (("name_en", 200), ("name_ar", 200), ("email", 254)):
        value = getattr(details, name)
        if "\x00" in value or len(value) > limit:
            return f"the patient's {name.replace('_', ' ')} is too long or not text"
    for raw, channel, what in ((details.phone, Channel.SMS, "mobile number"), (details.email, Channel.EMAIL,
                                                                                "e-mail address")):
        if raw.strip():
            try:
                normalise_recipient(raw, channel, region)
            except ValidationError as exc:
                return f"the patient's {what} '{raw.strip()[:40]}' cannot be used: {exc}"
    return None


@dataclass
class _Work:
    """A batch worked out: what each input does, and the rows to write."""

    items: list[Planned] = field(default_factory=list)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    patients: list[dict[str, Any]] = field(default_factory=list)
    read: dict[uuid.UUID, tuple[Any, ...]] = field(default_factory=dict)  # the rows to update, as read


def _where(rows: Sequence[int] | None, index: int) -> str:
    return f"row {rows[index]}" if rows is not None else f"item {index + 1}"


def _work_out(session: TenantSession, inputs: Sequence[AppointmentInput], *, source: str,
              rows: Sequence[int] | None, lock: bool) -> _Work:
    tenant = tenants.current(session)
    now = utcnow()
    batch = "upload" if source == "upload" else "batch"
    work = _Work()

    def refuse(index: int, item: AppointmentInput, reason: str) -> None:
        work.items.append(Planned(index, Kind.REFUSED, _source_id(item), reason=reason))

    first: dict[str, int] = {}
    usable: list[tuple[int, AppointmentInput]] = []
    for index, item in enumerate(inputs):
        problem = _problem(item)
        source_id = _source_id(item)
        if problem is None and source_id in first:
            problem = f"appears twice in this {batch}, first at {_where(rows, first[source_id])}"
        if source_id and source_id not in first:
            first[source_id] = index
        if problem is not None:
            refuse(index, item, problem)
        else:
            usable.append((index, item))
    stored = _existing(session, tenant.id, (_source_id(item) for _, item in usable), lock=lock)
    patients = _patients(session, tenant.id, (item.patient_mrn.strip() for _, item in usable))
    created_patients: dict[str, uuid.UUID] = {}
    for index, item in usable:
        mrn = item.patient_mrn.strip()
        found = patients.get(mrn, [])
        new_patient = False
        if len(found) > 1:
            refuse(index, item, f"{len(found)} patients in this clinic have MRN {mrn}; merge them first")
            continue
        if found:
            patient_id = found[0]
        elif mrn in created_patients:
            patient_id = created_patients[mrn]
        elif item.patient is None or not item.patient.given:
            refuse(index, item, f"no patient with MRN {mrn} in this clinic")
            continue
        elif (problem := _new_patient_problem(item.patient, tenant.default_region)) is not None:
            refuse(index, item, f"no patient with MRN {mrn} in this clinic, and {problem}")
            continue
        else:
            patient_id = created_patients[mrn] = uuid.uuid4()
            work.patients.append(_patient_row(tenant, patient_id, mrn, item.patient))
            new_patient = True
        work.items.append(_plan_one(work, index, item, patient_id, stored.get(_source_id(item)), source, now,
                                    tenant.id, new_patient))
    work.items.sort(key=lambda planned: planned.index)
    return work


def _patient_row(tenant: Any, patient_id: uuid.UUID, mrn: str, details: PatientDetails) -> dict[str, Any]:
    region = tenant.default_region
    now = utcnow()
    return {"id": patient_id, "tenant_id": tenant.id, "mrn": mrn, "name_en": details.name_en.strip(),
            "name_ar": details.name_ar.strip(),
            "phone_e164": normalise_recipient(details.phone, Channel.SMS, region) if details.phone.strip() else None,
            "email": normalise_recipient(details.email, Channel.EMAIL, region) if details.email.strip() else None,
            "language": details.language or Language(tenant.default_language), "is_active": True,
            "created_at": now, "updated_at": now}


def _plan_one(work: _Work, index: int, item: AppointmentInput, patient_id: uuid.UUID, row: Any, source: str,
              now: dt.datetime, tenant_id: uuid.UUID, new_patient: bool) -> Planned:
    values = _values(item, patient_id)
    source_id = _source_id(item)
    if row is None:
        appointment_id = uuid.uuid4()
        work.inserts.append({**values, "id": appointment_id, "tenant_id": tenant_id, "source_id": source_id,
                             "status": item.status, "status_changed_at": now, "status_source": source,
                             "created_at": now, "updated_at": now})
        return Planned(index, Kind.CREATE, source_id, appointment_id, status=item.status, new_patient=new_patient)
    rescheduled = values["starts_at"] != row.starts_at
    values["status"] = next_status(AppointmentStatus(row.status), row.status_source, item.status,
                                   rescheduled=rescheduled)
    stored = tuple(row)
    if tuple(values.values()) == stored[_COMPARED_AT:]:  # the usual case of a feed sent again: nothing to do
        return Planned(index, Kind.UNCHANGED, source_id, row.id, status=values["status"])
    before = dict(zip(COMPARED, stored[_COMPARED_AT:], strict=True))
    changed = tuple(name for name in COMPARED if values[name] != before[name])
    status_moved = "status" in changed
    work.read[row.id] = stored
    work.updates.append({**values, "id": row.id, "updated_at": now,
                         "status_changed_at": now if status_moved else row.status_changed_at,
                         "status_source": source if status_moved else row.status_source})
    kind = Kind.CANCEL if status_moved and values["status"] == AppointmentStatus.CANCELLED else Kind.CHANGE
    return Planned(index, kind, source_id, row.id, changed, {name: before[name] for name in changed},
                   status=values["status"], new_patient=new_patient)


def _still_as_read(session: TenantSession, work: _Work) -> bool:
    """Lock the rows about to be updated and tell whether they are still as they were read (so an
    update computed from them loses no change made meanwhile, e.g. a patient's confirmation)."""
    for chunk in _chunks(session, work.read):
        now = session.execute(select(*_READ).where(_among(session, Appointment.id, chunk)).with_for_update()).all()
        if len(now) != len(chunk) or any(tuple(row) != work.read[row.id] for row in now):
            return False
    return True


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}")


def preview(session: TenantSession, actor: Actor, inputs: Sequence[AppointmentInput], *, source: str,
            rows: Sequence[int] | None = None) -> Preview:
    """What ``apply`` would do with ``inputs`` now, without writing anything (the upload's review).

    ``rows``: the row number of each input as the user sees it (an upload's), used in reasons."""
    authorize(session, actor, Permission.IMPORT_APPOINTMENTS)
    _check_source(source)
    return Preview(_work_out(session, inputs, source=source, rows=rows, lock=False).items)


def apply(session: TenantSession, actor: Actor, inputs: Sequence[AppointmentInput], *, source: str,
          rows: Sequence[int] | None = None) -> ApplyResult:
    """Upsert ``inputs`` into the session's clinic (``source``: "api" or "upload"), in the caller's
    transaction; then re-plan the reminders of what changed. One audit event with the counts.

    Raises ``ConflictError`` (nothing written) when another import added the same appointments at
    the same moment; every other problem is a ``Refusal`` of its input.
    """
    authorize(session, actor, Permission.IMPORT_APPOINTMENTS)
    _check_source(source)
    work = _work_out(session, inputs, source=source, rows=rows, lock=False)
    if not _still_as_read(session, work):  # someone changed them since: work it out again, all rows locked
        work = _work_out(session, inputs, source=source, rows=rows, lock=True)
    try:
        if work.patients:
            session.execute(insert(Patient), work.patients)
        if work.inserts:
            session.execute(insert(Appointment), work.inserts)
        if work.updates:
            session.execute(update(Appointment), work.updates)
    except IntegrityError:
        raise ConflictError("Another import saved some of these appointments at the same moment. Nothing was "
                            "saved from this one: apply it again.") from None
    result = ApplyResult(
        created=sum(1 for i in work.items if i.kind == Kind.CREATE),
        changed=sum(1 for i in work.items if i.kind == Kind.CHANGE),
        unchanged=sum(1 for i in work.items if i.kind == Kind.UNCHANGED),
        cancelled=sum(1 for i in work.items if i.kind == Kind.CANCEL),
        patients_created=len(work.patients),
        refused=Preview(work.items).refused,
        appointment_ids=[i.appointment_id for i in work.items
                         if i.kind in (Kind.CREATE, Kind.CHANGE, Kind.CANCEL) and i.appointment_id is not None],
    )
    audit.record(session, actor, "appointments.apply", object_type="appointments", details={
        "source": source, "created": result.created, "changed": result.changed, "cancelled": result.cancelled,
        "unchanged": result.unchanged, "refused": len(result.refused), "patients_created": result.patients_created})
    _plan_reminders(session, result.appointment_ids)
    return result


def _source_id(item: AppointmentInput) -> str:
    return item.source_id.strip()[:128] if isinstance(item.source_id, str) else ""


def _plan_reminders(session: TenantSession, appointment_ids: Collection[uuid.UUID]) -> None:
    """Re-plan the reminders of the appointments just written (the reminders' planner decides what)."""
    if not appointment_ids:
        return
    try:
        planner = importlib.import_module("app.services.reminders.planner")
    except ModuleNotFoundError as exc:  # the reminders' planner (issue 20) is not in this tree yet
        if not (exc.name or "").startswith("app.services.reminders"):
            raise
        return
    session.flush()
    planner.plan(session, appointment_ids=list(appointment_ids))


# --- one appointment's status ---------------------------------------------------------------------

_STATUS_PERMISSION = {"reply": Permission.WORK_INBOX, "staff": Permission.WORK_INBOX,
                      "api": Permission.IMPORT_APPOINTMENTS}
_BY_REPLY = frozenset({AppointmentStatus.CONFIRMED, AppointmentStatus.CANCELLED})


def set_status(session: TenantSession, actor: Actor, appointment_id: uuid.UUID, status: AppointmentStatus, *,
               source: str, now: dt.datetime | None = None) -> bool:
    """Move one appointment to ``status``; False when it already has it. Audited with the old and new status.

    ``source``: "reply" (the patient's answer: only confirm or cancel an appointment still to come,
    never one that has started or is no longer open), "staff" or "api". The row is locked while it
    changes, so two replies at once change it once. Its reminders are re-planned.
    """
    if source not in _STATUS_PERMISSION:
        raise ValueError(f"source must be one of {STATUS_SOURCES}")
    authorize(session, actor, _STATUS_PERMISSION[source])
    status = AppointmentStatus(status)
    now = now or utcnow()
    appointment = session.scalar(select(Appointment).where(Appointment.id == appointment_id).with_for_update())
    if appointment is None:
        raise NotFoundError("That appointment does not exist in your clinic.")
    old = AppointmentStatus(appointment.status)
    if old == status:
        return False
    if source == "reply":
        if status not in _BY_REPLY:
            raise ValidationError(f"A patient's reply cannot mark an appointment {status.label.lower()}.")
        if appointment.starts_at <= now:
            raise ValidationError("The appointment has already started; a reply cannot change it.")
        if old not in OPEN_APPOINTMENT_STATUSES:
            raise ValidationError(f"The appointment is {old.label.lower()}; a reply cannot change it. "
                                  "A person should look at it.")
    session.execute(update(Appointment).where(Appointment.id == appointment.id).values(
        status=status, status_changed_at=now, status_source=source, updated_at=now))
    audit.record(session, actor, "appointment.status", object_type="appointment", object_id=appointment.id,
                 details={"from": old.value, "to": status.value, "source": source})
    _plan_reminders(session, [appointment.id])
    return True
