"""FHIR R4 Appointment <-> appointment: what a clinic system sends becomes the one appointment input
(patient from a contained Patient or a reference, names told apart by script, every status), every
problem is reported at its element, and what we send back is a valid Appointment with the patient's answer."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from typing import Any

import pytest
from fhir.resources.R4B.appointment import Appointment as FhirAppointment

from app.services.appointments.fhir import (
    STATUS_IN,
    InvalidResource,
    ResourceError,
    UnacceptableResource,
    parse_appointment,
    to_fhir,
)
from db.enums import AppointmentStatus, Language
from db.models import Appointment, Patient

RIYADH = dt.timezone(dt.timedelta(hours=3))


def resource(**changes: Any) -> dict[str, Any]:
    """A booked appointment with a contained patient, as a clinic system sends it."""
    base: dict[str, Any] = {
        "resourceType": "Appointment", "id": "a-1",
        "identifier": [{"system": "urn:oid:1.2.3", "value": "APT-1001"}],
        "status": "booked",
        "appointmentType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0276",
                                        "code": "FOLLOWUP", "display": "A follow up visit"}]},
        "specialty": [{"coding": [{"code": "394582007", "display": "Dermatology"}]}],
        "start": "2026-12-10T09:00:00+03:00", "end": "2026-12-10T09:30:00+03:00",
        "contained": [{
            "resourceType": "Patient", "id": "pat",
            "identifier": [{"system": "urn:insurer", "value": "INS-9"},
                           {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                 "code": "MR"}]}, "value": "MRN-0"}],
            "name": [{"use": "official", "family": "Ali", "given": ["Sara"]},
                     {"use": "official", "text": "سارة علي"}],
            "telecom": [{"system": "email", "value": "sara@example.com"},
                        {"system": "phone", "use": "home", "value": "0112345678"},
                        {"system": "phone", "use": "mobile", "value": "+966501234567"}],
            "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}]}},
                              {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "ar-SA"}]},
                               "preferred": True}],
        }],
        "participant": [
            {"actor": {"reference": "#pat"}, "required": "required", "status": "needs-action"},
            {"actor": {"reference": "Practitioner/dr-7", "display": "Dr. Hala Omar"}, "status": "accepted"},
            {"actor": {"reference": "Location/room-3", "display": "Clinic 3, first floor"}, "status": "accepted"},
        ],
    }
    base.update(changes)
    return base


def issues(error: ResourceError) -> dict[str, str]:
    return {issue.expression: issue.message for issue in error.issues}


def test_a_booked_appointment_with_its_contained_patient() -> None:
    item = parse_appointment(resource())
    assert item.source_id == "APT-1001"
    assert item.patient_mrn == "MRN-0"  # the identifier typed MR, not the first one
    assert item.starts_at == dt.datetime(2026, 12, 10, 6, 0, tzinfo=dt.UTC)
    assert item.starts_at.tzinfo == dt.UTC
    assert item.duration_minutes == 30
    assert (item.appointment_type, item.department) == ("A follow up visit", "Dermatology")
    assert (item.doctor_name_en, item.doctor_name_ar, item.location) == ("Dr. Hala Omar", "", "Clinic 3, first floor")
    assert item.status == AppointmentStatus.BOOKED
    assert item.patient is not None
    assert (item.patient.name_en, item.patient.name_ar) == ("Sara Ali", "سارة علي")
    assert (item.patient.phone, item.patient.email) == ("+966501234567", "sara@example.com")  # the mobile
    assert item.patient.language == Language.AR  # the preferred language


def test_arabic_names_are_told_apart_by_script_in_any_order() -> None:
    payload = resource()
    patient = payload["contained"][0]
    patient["name"] = [{"given": ["عمر"], "family": "سعيد"}, {"text": "Omar Said"}]
    patient["communication"] = []
    payload["participant"][1]["actor"]["display"] = "د. هالة عمر"
    item = parse_appointment(payload)
    assert item.patient is not None
    assert (item.patient.name_en, item.patient.name_ar, item.patient.language) == ("Omar Said", "عمر سعيد", None)
    assert (item.doctor_name_en, item.doctor_name_ar) == ("", "د. هالة عمر")


def test_a_contained_practitioner_names_the_doctor() -> None:
    payload = resource()
    payload["contained"].append({"resourceType": "Practitioner", "id": "dr",
                                 "name": [{"prefix": ["Dr."], "given": ["Hala"], "family": "Omar"}]})
    payload["participant"][1] = {"actor": {"reference": "#dr"}, "status": "accepted"}
    assert parse_appointment(payload).doctor_name_en == "Dr. Hala Omar"


@pytest.mark.parametrize("actor, mrn", [
    ({"reference": "Patient/MRN-0"}, "MRN-0"),
    ({"reference": "https://his.clinic.example/fhir/Patient/MRN-0"}, "MRN-0"),
    ({"reference": "Patient/MRN-0/_history/3"}, "MRN-0"),
    ({"type": "Patient", "identifier": {"system": "urn:mrn", "value": "MRN 0/A"}}, "MRN 0/A"),
])
def test_a_patient_named_by_reference_or_identifier_has_no_details(actor: dict, mrn: str) -> None:
    payload = resource(contained=[])
    payload["participant"][0] = {"actor": actor, "status": "accepted"}
    item = parse_appointment(payload)
    assert (item.patient_mrn, item.patient) == (mrn, None)


@pytest.mark.parametrize("fhir_status", sorted(STATUS_IN))
def test_each_status(fhir_status: str) -> None:
    expected = {"proposed": "booked", "pending": "booked", "booked": "booked", "arrived": "booked",
                "checked-in": "booked", "cancelled": "cancelled", "entered-in-error": "cancelled",
                "noshow": "no_show", "fulfilled": "completed"}[fhir_status]
    assert parse_appointment(resource(status=fhir_status)).status == AppointmentStatus(expected)


def test_a_waitlisted_appointment_is_refused_clearly() -> None:
    with pytest.raises(UnacceptableResource) as refused:
        parse_appointment(resource(status="waitlist"))
    assert "waitlist" in issues(refused.value)["Appointment.status"]


def test_the_id_is_the_first_identifier_else_the_resource_id() -> None:
    assert parse_appointment(resource(identifier=[])).source_id == "a-1"
    assert parse_appointment(resource(identifier=[], id=None), source_id="from-url").source_id == "from-url"
    with pytest.raises(UnacceptableResource) as refused:
        parse_appointment(resource(), source_id="APT-2002")
    assert "APT-2002" in issues(refused.value)["Appointment.identifier[0].value"]
    with pytest.raises(UnacceptableResource):
        parse_appointment(resource(identifier=[], id=None))


def test_duration_from_minutes_or_the_default() -> None:
    payload = resource(minutesDuration=45)
    del payload["end"]
    assert parse_appointment(payload).duration_minutes == 45
    del payload["minutesDuration"]
    assert parse_appointment(payload).duration_minutes == 20
    assert parse_appointment(resource(appointmentType=None, serviceType=[{"text": "Vaccination"}])
                             ).appointment_type == "Vaccination"


@pytest.mark.parametrize("change, expression, words", [
    ({"status": None}, "Appointment.status", "required"),
    ({"start": "tomorrow at nine"}, "Appointment.start", "time zone"),
    ({"start": "2026-12-10T09:00:00"}, "Appointment.start", "time zone"),
    ({"start": "2026-02-30T09:00:00+03:00"}, "Appointment.start", "day"),
    ({"start": 1765353600}, "Appointment.start", "text"),
    ({"end": "2026-12-10T08:00:00+03:00"}, "Appointment.end", "after the start"),
    ({"status": "maybe"}, "Appointment.status", "not an Appointment status"),
    ({"resourceType": "Patient"}, "resourceType", "Appointment"),
    ({"participant": []}, "Appointment.participant", "at least one"),
    ({"colour": "blue"}, "Appointment.colour", "not an element"),
    ({"minutesDuration": "long"}, "Appointment.minutesDuration", "integer"),
    ({"contained": [{"resourceType": "Spaceship", "id": "x"}]}, "Appointment.contained[0].resourceType",
     "not a FHIR resource"),
])
def test_an_invalid_resource_names_the_element(change: dict, expression: str, words: str) -> None:
    payload = resource()
    for key, value in change.items():
        if value is None:
            payload.pop(key)
        else:
            payload[key] = value
    with pytest.raises(InvalidResource) as refused:
        parse_appointment(payload)
    found = issues(refused.value)
    assert expression in found and words in found[expression], found
    assert expression in str(refused.value)


def test_every_problem_is_listed_at_once() -> None:
    payload = resource(status="maybe")
    payload["participant"][0]["status"] = "perhaps"
    payload["participant"][1]["actor"]["reference"] = 42
    with pytest.raises(InvalidResource) as refused:
        parse_appointment(payload)
    assert set(issues(refused.value)) >= {"Appointment.participant[1].actor.reference"}
    payload["participant"][1]["actor"]["reference"] = "Practitioner/dr-7"
    with pytest.raises(InvalidResource) as refused:
        parse_appointment(payload)
    assert set(issues(refused.value)) == {"Appointment.status", "Appointment.participant[0].status"}


@pytest.mark.parametrize("body", [[], "Appointment", None, 7])
def test_a_body_that_is_no_resource(body: Any) -> None:
    with pytest.raises(InvalidResource):
        parse_appointment(body)


def test_who_the_patient_is_must_be_clear() -> None:
    without = resource()
    without["participant"] = without["participant"][1:]
    with pytest.raises(UnacceptableResource, match="no Patient participant"):
        parse_appointment(without)
    two = resource()
    two["participant"].append({"actor": {"reference": "Patient/MRN-9"}, "status": "accepted"})
    with pytest.raises(UnacceptableResource, match="more than one"):
        parse_appointment(two)
    dangling = resource()
    dangling["participant"][0]["actor"]["reference"] = "#nobody"
    with pytest.raises(InvalidResource, match="names no contained resource"):
        parse_appointment(dangling)
    nameless = resource()
    nameless["contained"][0]["identifier"] = []
    with pytest.raises(UnacceptableResource, match="medical record number"):
        parse_appointment(nameless)
    with pytest.raises(UnacceptableResource, match="modifier extension"):
        parse_appointment(resource(modifierExtension=[{"url": "urn:x", "valueBoolean": True}]))


def _stored(status: AppointmentStatus, source: str = "api", **fields: Any) -> tuple[Appointment, Patient]:
    appointment = Appointment(
        id=uuid.uuid4(), source_id="APT-1001", starts_at=dt.datetime(2026, 12, 10, 6, 0, tzinfo=dt.UTC),
        duration_minutes=30, appointment_type="A follow up visit", department="Dermatology",
        doctor_name_en="", doctor_name_ar="د. هالة عمر", location="Clinic 3", status=status,
        status_source=source, updated_at=dt.datetime(2026, 12, 6, 8, 15, 30, 123456, tzinfo=dt.UTC), **fields)
    return appointment, Patient(mrn="MRN-0", name_en="Sara Ali")


@pytest.mark.parametrize("status, source, fhir_status, answer", [
    (AppointmentStatus.BOOKED, "api", "booked", "needs-action"),
    (AppointmentStatus.CONFIRMED, "reply", "booked", "accepted"),
    (AppointmentStatus.CANCELLED, "reply", "cancelled", "declined"),
    (AppointmentStatus.CANCELLED, "api", "cancelled", "needs-action"),
    (AppointmentStatus.COMPLETED, "api", "fulfilled", "needs-action"),
    (AppointmentStatus.NO_SHOW, "api", "noshow", "needs-action"),
])
def test_written_back_with_the_patients_answer(status: AppointmentStatus, source: str, fhir_status: str,
                                               answer: str) -> None:
    written = to_fhir(*_stored(status, source))
    FhirAppointment.model_validate(written)  # a valid R4 Appointment
    assert written["status"] == fhir_status
    assert written["participant"][0] == {"actor": {"reference": "Patient/MRN-0", "type": "Patient"},
                                         "required": "required", "status": answer}
    assert written["meta"]["lastUpdated"] == "2026-12-06T08:15:30.123456Z"
    assert written["identifier"] == [{"value": "APT-1001"}] and written["id"] == "APT-1001"
    assert ("cancelationReason" in written) == (answer == "declined")


def test_what_is_written_back_reads_in_as_the_same_appointment() -> None:
    written = copy.deepcopy(to_fhir(*_stored(AppointmentStatus.BOOKED)))
    item = parse_appointment(written)
    assert (item.source_id, item.patient_mrn, item.starts_at, item.duration_minutes) == (
        "APT-1001", "MRN-0", dt.datetime(2026, 12, 10, 6, 0, tzinfo=dt.UTC), 30)
    assert (item.appointment_type, item.department, item.doctor_name_ar, item.location) == (
        "A follow up visit", "Dermatology", "د. هالة عمر", "Clinic 3")


def test_an_id_fhir_cannot_carry_stays_in_the_identifier() -> None:
    appointment, patient = _stored(AppointmentStatus.BOOKED)
    appointment.source_id, patient.mrn = "APT/2026/1", "MRN 0/A"
    written = to_fhir(appointment, patient)
    FhirAppointment.model_validate(written)
    assert "id" not in written and written["identifier"] == [{"value": "APT/2026/1"}]
    assert written["participant"][0]["actor"] == {"type": "Patient", "identifier": {"value": "MRN 0/A"}}
