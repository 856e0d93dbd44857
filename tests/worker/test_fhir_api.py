"""The appointments API over real HTTP: a clinic's system books, reschedules and cancels with FHIR R4
Appointments and reads back what patients answered. Two clinics with the same MRN, phone and name and
the same appointment id in their systems; a key sees only its own clinic; bad input gets an
OperationOutcome naming the element, and nothing is written. On both backends."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, func, select, update

from app.services import api_keys, passwords
from app.services.permissions import Actor
from db.enums import AppointmentStatus, Language, Role
from db.models import Appointment, AuditEvent, Patient
from db.session import system_session, tenant_session
from tests.delivery.conftest import RecordingQueue
from tests.factories import call, make_tenant, make_user, script_runtime
from tests.peers._threaded import ThreadedASGIServer
from worker.webhooks import MAX_BODY_BYTES, create_app

FHIR = "application/fhir+json"
MRN = "MRN-7"  # in both clinics, for patients with the same name and number


@dataclasses.dataclass
class Clinic:
    tenant_id: uuid.UUID
    admin: Actor
    key: str
    key_id: uuid.UUID
    patient_id: uuid.UUID


@dataclasses.dataclass
class Api:
    engine: Engine
    client: httpx.Client
    a: Clinic
    b: Clinic

    def send(self, clinic: Clinic | str | None, method: str, path: str, body: Any = None,
             content_type: str = FHIR, raw: bytes | None = None, **params: Any) -> httpx.Response:
        """A request with the clinic's key, or with ``clinic`` as the whole Authorization header."""
        authorization = f"Bearer {clinic.key}" if isinstance(clinic, Clinic) else clinic
        headers = {"Authorization": authorization} if authorization is not None else {}
        if body is not None or raw is not None:
            headers["Content-Type"] = content_type
        content = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        return self.client.request(method, path, content=content, headers=headers, params=params or None)

    def put(self, clinic: Clinic, source_id: str, **changes: Any) -> httpx.Response:
        return self.send(clinic, "PUT", f"/fhir/Appointment/{source_id}", appointment(source_id, **changes))


def _clinic(engine: Engine, slug: str) -> Clinic:
    tenant_id = make_tenant(engine, slug, "Al Noor Clinic")
    admin = make_user(engine, tenant_id, f"admin-{slug}", Role.ADMIN)
    with tenant_session(engine, tenant_id) as session:
        patient = Patient(mrn=MRN, name_en="Sara Ali", name_ar="سارة علي", phone_e164="+966501234567",
                          email="sara@example.com", language=Language.AR)
        session.add(patient)
        session.flush()
        patient_id = patient.id
    view, key = call(engine, admin, api_keys.create, "Clinic HIS")
    return Clinic(tenant_id, admin, key, view.id, patient_id)


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 parameters for the admins these tests make: they are about keys, not hashing."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    runtime = script_runtime(engine, RecordingQueue())
    server = ThreadedASGIServer(create_app(lambda: runtime))
    server.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            yield Api(engine, client, _clinic(engine, "clinic-a"), _clinic(engine, "clinic-b"))
    finally:
        server.stop()


def appointment(source_id: str = "APT-1", *, mrn: str = MRN, status: str = "booked",
                start: str = "2030-01-08T09:00:00+03:00", minutes: int = 20, **changes: Any) -> dict[str, Any]:
    start_at = dt.datetime.fromisoformat(start)
    resource = {
        "resourceType": "Appointment",
        "identifier": [{"system": "urn:his", "value": source_id}],
        "status": status,
        "serviceType": [{"text": "Follow-up"}],
        "specialty": [{"text": "Dermatology"}],
        "start": start, "end": (start_at + dt.timedelta(minutes=minutes)).isoformat(),
        "participant": [
            {"actor": {"reference": f"Patient/{mrn}"}, "status": "needs-action"},
            {"actor": {"reference": "Practitioner/dr-1", "display": "Dr. Hala"}, "status": "accepted"},
        ],
    }
    resource.update(changes)
    return resource


def _appointments(engine: Engine, tenant_id: uuid.UUID) -> list[Appointment]:
    with tenant_session(engine, tenant_id) as session:
        rows = list(session.scalars(select(Appointment).where(Appointment.source_id.is_not(None))
                                    .order_by(Appointment.created_at)))
        session.expunge_all()
        return rows


def _patients(engine: Engine) -> int:
    with system_session(engine) as session:
        return session.scalar(select(func.count()).select_from(Patient)) or 0


def _issues(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert response.headers["content-type"].startswith(FHIR)
    return {(issue.get("expression") or [""])[0]: issue["diagnostics"] for issue in body["issue"]}


# --- booking, changing, reading back -------------------------------------------------------------


def test_a_booking_is_created_once_and_a_repeat_changes_nothing(api: Api) -> None:
    created = api.send(api.a, "POST", "/fhir/Appointment", appointment())
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith(FHIR)
    assert created.headers["Location"].endswith("/fhir/Appointment/APT-1")
    body = created.json()
    assert (body["resourceType"], body["status"], body["identifier"]) == ("Appointment", "booked",
                                                                          [{"value": "APT-1"}])
    assert body["start"] == "2030-01-08T06:00:00Z" and body["minutesDuration"] == 20
    assert body["participant"][0]["status"] == "needs-action"
    again = api.put(api.a, "APT-1")
    assert (again.status_code, again.headers["X-Outcome"]) == (200, "unchanged")
    assert again.json() == body
    [stored] = _appointments(api.engine, api.a.tenant_id)
    assert (stored.patient_id, stored.status_source, stored.department) == (api.a.patient_id, "api", "Dermatology")
    assert _appointments(api.engine, api.b.tenant_id) == []
    with system_session(api.engine) as session:
        who = set(session.scalars(select(AuditEvent.actor_name).where(AuditEvent.action == "appointments.apply")))
    assert who == {f"API key {api.a.key[:11]} (Clinic HIS)"}


def test_a_new_patient_comes_in_a_contained_patient_resource(api: Api) -> None:
    body = appointment(mrn="MRN-NEW", contained=[{
        "resourceType": "Patient", "id": "p", "identifier": [{"value": "MRN-NEW"}],
        "name": [{"text": "Layla Hassan"}, {"text": "ليلى حسن"}],
        "telecom": [{"system": "phone", "value": "0501112233"}],
        "communication": [{"language": {"coding": [{"code": "ar"}]}}]}])
    body["participant"][0]["actor"] = {"reference": "#p"}
    assert api.send(api.a, "POST", "/fhir/Appointment", body).status_code == 201
    with tenant_session(api.engine, api.a.tenant_id) as session:
        patient = session.scalar(select(Patient).where(Patient.mrn == "MRN-NEW"))
        assert (patient.name_en, patient.name_ar, patient.phone_e164, patient.language) == (
            "Layla Hassan", "ليلى حسن", "+966501112233", Language.AR)
    with tenant_session(api.engine, api.b.tenant_id) as session:
        assert session.scalar(select(Patient).where(Patient.mrn == "MRN-NEW")) is None


def test_the_same_id_in_two_clinics_is_two_appointments_and_a_key_sees_its_own(api: Api) -> None:
    assert api.put(api.a, "APT-1", start="2030-01-08T09:00:00+03:00").status_code == 201
    assert api.put(api.b, "APT-1", start="2030-01-09T11:00:00+03:00").status_code == 201
    assert api.put(api.b, "APT-B-ONLY").status_code == 201
    assert api.send(api.a, "GET", "/fhir/Appointment/APT-1").json()["start"] == "2030-01-08T06:00:00Z"
    assert api.send(api.b, "GET", "/fhir/Appointment/APT-1").json()["start"] == "2030-01-09T08:00:00Z"
    missing = api.send(api.a, "GET", "/fhir/Appointment/APT-B-ONLY")
    assert missing.status_code == 404 and "APT-B-ONLY" in _issues(missing)[""]
    listed = api.send(api.a, "GET", "/fhir/Appointment").json()
    assert [e["resource"]["identifier"][0]["value"] for e in listed["entry"]] == ["APT-1"]
    [a] = _appointments(api.engine, api.a.tenant_id)
    b = _appointments(api.engine, api.b.tenant_id)
    assert a.patient_id == api.a.patient_id and {x.patient_id for x in b} == {api.b.patient_id}
    # clinic A writing "APT-B-ONLY" makes its own appointment; B's is untouched
    assert api.put(api.a, "APT-B-ONLY", start="2030-02-01T10:00:00+03:00").status_code == 201
    assert api.send(api.b, "GET", "/fhir/Appointment/APT-B-ONLY").json()["start"] == "2030-01-08T06:00:00Z"


def test_a_reschedule_and_a_cancellation_arrive_by_put(api: Api) -> None:
    api.put(api.a, "APT-1")
    moved = api.put(api.a, "APT-1", start="2030-01-10T16:30:00+03:00", minutes=40)
    assert (moved.status_code, moved.headers["X-Outcome"]) == (200, "updated")
    assert (moved.json()["start"], moved.json()["minutesDuration"]) == ("2030-01-10T13:30:00Z", 40)
    cancelled = api.put(api.a, "APT-1", start="2030-01-10T16:30:00+03:00", minutes=40, status="cancelled")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["participant"][0]["status"] == "needs-action"  # the clinic cancelled, not the patient
    [stored] = _appointments(api.engine, api.a.tenant_id)
    assert (stored.status, stored.status_source) == (AppointmentStatus.CANCELLED, "api")
    assert stored.starts_at == dt.datetime(2030, 1, 10, 13, 30, tzinfo=dt.UTC)


def test_the_same_booking_sent_at_once_is_stored_once(api: Api) -> None:
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: api.put(api.a, "APT-1"), range(6)))
    assert sorted(r.status_code for r in answers) == [200] * 5 + [201], [r.text for r in answers]
    assert len(_appointments(api.engine, api.a.tenant_id)) == 1


def _patient_answers(api: Api, source_id: str, status: AppointmentStatus) -> None:
    """What the replies' service does when a patient confirms or cancels (set here directly)."""
    with tenant_session(api.engine, api.a.tenant_id) as session:
        session.execute(update(Appointment).where(Appointment.source_id == source_id).values(
            status=status, status_source="reply", status_changed_at=dt.datetime.now(dt.UTC)))


def test_the_clinic_system_reads_back_what_patients_answered(api: Api) -> None:
    for source_id in ("APT-1", "APT-2", "APT-3"):
        since = api.put(api.a, source_id).json()["meta"]["lastUpdated"]  # the clinic system's last read
    api.put(api.b, "APT-1")
    _patient_answers(api, "APT-1", AppointmentStatus.CONFIRMED)
    _patient_answers(api, "APT-2", AppointmentStatus.CANCELLED)
    one = api.send(api.a, "GET", "/fhir/Appointment/APT-1").json()
    assert (one["status"], one["participant"][0]["status"]) == ("booked", "accepted")
    bundle = api.send(api.a, "GET", "/fhir/Appointment", _lastUpdated=f"gt{since}").json()
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "searchset")
    answers = {e["resource"]["identifier"][0]["value"]: (e["resource"]["status"],
                                                         e["resource"]["participant"][0]["status"])
               for e in bundle["entry"]}
    assert answers == {"APT-1": ("booked", "accepted"), "APT-2": ("cancelled", "declined")}
    assert all(e["fullUrl"].endswith(f"/fhir/Appointment/{k}") for e, k in zip(bundle["entry"], answers, strict=True))
    # the clinic system sends its own copy back as "booked": the patient's confirmation stays
    echoed = api.put(api.a, "APT-1")
    assert echoed.status_code == 200 and echoed.json()["participant"][0]["status"] == "accepted"


def test_changes_are_read_in_pages_with_a_next_link(api: Api) -> None:
    for index in range(5):
        api.put(api.a, f"APT-{index}")
        api.put(api.b, f"APT-{index}")
    seen: list[str] = []
    url: str | None = "/fhir/Appointment?_lastUpdated=gt2000-01-01T00:00:00Z&_count=2"
    pages = 0
    while url:
        page = api.send(api.a, "GET", url.removeprefix(str(api.client.base_url)))
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [e["resource"]["identifier"][0]["value"] for e in body["entry"]]
        url = next((link["url"] for link in body["link"] if link["relation"] == "next"), None)
        pages += 1
    assert pages == 3 and sorted(seen) == [f"APT-{i}" for i in range(5)] and len(seen) == 5
    later = api.send(api.a, "GET", "/fhir/Appointment", _lastUpdated="gt2100-01-01T00:00:00Z").json()
    assert later["entry"] == [] and [link["relation"] for link in later["link"]] == ["self"]


@pytest.mark.parametrize("params, name", [
    ({"_lastUpdated": "2026-12-01"}, "_lastUpdated"),
    ({"_lastUpdated": "gtyesterday"}, "_lastUpdated"),
    ({"_lastUpdated": "gt2026-12-01T10:00:00"}, "_lastUpdated"),
    ({"_count": "-3"}, "_count"),
    ({"_page": "not-a-page"}, "_page"),
    ({"patient": "MRN-7"}, "patient"),
])
def test_a_search_it_cannot_do_is_refused(api: Api, params: dict, name: str) -> None:
    response = api.send(api.a, "GET", "/fhir/Appointment", **params)
    assert response.status_code == 400 and name in _issues(response)


# --- keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer ck_not-a-key", "Basic dXNlcjpwYXNz", "ck_x"])
def test_no_key_or_a_wrong_key_is_401(api: Api, authorization: str | None) -> None:
    response = api.send(authorization, "POST", "/fhir/Appointment", appointment())
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "key" in _issues(response)[""]
    assert api.send(authorization, "GET", "/fhir/Appointment/APT-1").status_code == 401
    assert api.send(f"Bearer {api.b.key}x", "GET", "/fhir/Appointment").status_code == 401
    assert _appointments(api.engine, api.a.tenant_id) == []


def test_a_revoked_key_is_refused_at_once(api: Api) -> None:
    assert api.put(api.a, "APT-1").status_code == 201
    call(api.engine, api.a.admin, api_keys.revoke, api.a.key_id)
    refused = api.put(api.a, "APT-1", status="cancelled")
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert api.send(api.a, "GET", "/fhir/Appointment/APT-1").status_code == 401
    assert _appointments(api.engine, api.a.tenant_id)[0].status == AppointmentStatus.BOOKED
    assert api.put(api.b, "APT-1").status_code == 201  # the other clinic's key goes on working


# --- bad input: a clear answer, nothing written ----------------------------------------------------


def _without(resource: dict, name: str) -> dict:
    return {k: v for k, v in resource.items() if k != name}


@pytest.mark.parametrize("body, expression, words", [
    (_without(appointment(), "status"), "Appointment.status", "required"),
    (appointment(start="2030-01-08T09:00:00+03:00") | {"start": "08/01/2030 09:00"}, "Appointment.start",
     "time zone"),
    (appointment() | {"resourceType": "Patient"}, "resourceType", "Appointment"),
    (appointment() | {"participant": [{"actor": {"reference": "Patient/MRN-7"}}]},
     "Appointment.participant[0].status", "required"),
])
def test_an_invalid_resource_is_400_with_each_problem(api: Api, body: dict, expression: str, words: str) -> None:
    response = api.send(api.a, "POST", "/fhir/Appointment", body)
    assert response.status_code == 400
    found = _issues(response)
    assert words in found[expression], found
    assert _appointments(api.engine, api.a.tenant_id) == []


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe{}", b"[" * 50_000, b'{"a": ' + b"9" * 5000 + b"}"])
def test_a_body_that_is_not_json_is_400(api: Api, raw: bytes) -> None:
    response = api.send(api.a, "POST", "/fhir/Appointment", raw=raw)
    assert response.status_code == 400 and "not JSON" in _issues(response)[""]
    assert _appointments(api.engine, api.a.tenant_id) == []


def test_a_form_or_xml_body_is_415_and_json_is_accepted_too(api: Api) -> None:
    for content_type in ("application/x-www-form-urlencoded", "application/fhir+xml", "text/plain"):
        response = api.send(api.a, "POST", "/fhir/Appointment", appointment(), content_type=content_type)
        assert response.status_code == 415 and FHIR in _issues(response)[""]
    assert _appointments(api.engine, api.a.tenant_id) == []
    accepted = api.send(api.a, "POST", "/fhir/Appointment", appointment(),
                        content_type="application/json; charset=utf-8")
    assert accepted.status_code == 201


def test_a_body_over_the_limit_is_413_and_nothing_is_written(api: Api) -> None:
    big = appointment() | {"comment": "x" * (MAX_BODY_BYTES + 1)}
    response = api.send(api.a, "POST", "/fhir/Appointment", big)
    assert response.status_code == 413
    assert _appointments(api.engine, api.a.tenant_id) == []


def test_an_unknown_patient_is_422_and_nothing_is_written(api: Api) -> None:
    patients = _patients(api.engine)
    # MRN-0 is a patient of the neighbouring clinic (tests/neighbours.py), not of clinic A
    for mrn in ("MRN-404", "MRN-0"):
        response = api.put(api.a, "APT-1", mrn=mrn)
        assert response.status_code == 422
        assert f"no patient with MRN {mrn}" in _issues(response)["Appointment"]
    assert _appointments(api.engine, api.a.tenant_id) == [] and _patients(api.engine) == patients


@pytest.mark.parametrize("change, expression", [
    ({"status": "waitlist"}, "Appointment.status"),
    ({"identifier": [{"value": "APT-OTHER"}]}, "Appointment.identifier[0].value"),
])
def test_a_valid_resource_it_cannot_take_is_422(api: Api, change: dict, expression: str) -> None:
    response = api.send(api.a, "PUT", "/fhir/Appointment/APT-1", appointment() | change)
    assert response.status_code == 422 and expression in _issues(response)
    assert _appointments(api.engine, api.a.tenant_id) == []


def test_a_resource_nested_too_deeply_for_the_models_is_400_and_nothing_is_written(api: Api) -> None:
    # within the JSON parser's depth and the body limit, past what the FHIR models can validate
    nested: dict[str, Any] = {"url": "urn:x"}
    for _ in range(300):
        nested = {"url": "urn:x", "extension": [nested]}
    response = api.send(api.a, "POST", "/fhir/Appointment", appointment() | {"extension": [nested]})
    assert response.status_code == 400
    assert "nested" in _issues(response)["Appointment"]
    assert _appointments(api.engine, api.a.tenant_id) == []


@pytest.mark.parametrize("start", ["9999-12-31T23:59:00Z", "0001-01-01T00:10:00+03:00"])
def test_a_start_at_the_end_of_the_calendar_is_422_and_nothing_is_written(api: Api, start: str) -> None:
    response = api.send(api.a, "PUT", "/fhir/Appointment/APT-1", _without(appointment(), "end") | {"start": start})
    assert response.status_code == 422, response.text
    assert "is not a date this system takes" in _issues(response)["Appointment.start"]
    assert _appointments(api.engine, api.a.tenant_id) == []


@pytest.mark.parametrize("instant", ["gt0001-01-01T00:00:00+14:00", "ge9999-12-31T23:59:59-12:00"])
def test_changes_since_an_instant_outside_the_calendar_in_utc_is_400_not_500(api: Api, instant: str) -> None:
    assert api.put(api.a, "APT-1").status_code == 201
    response = api.send(api.a, "GET", "/fhir/Appointment", _lastUpdated=instant)
    assert response.status_code == 400 and "outside the calendar" in _issues(response)["_lastUpdated"]
