"""One bulk engine: the scripts' ``MessagingService().send_bulk_messages`` and the wizard write the
same rows for the same recipients (language, opt-out, consent, suppression reasons, refusals).

Two clinics share numbers and names, with different settings, so a rule read from the wrong clinic
shows up as a different row. Runs on SQLite and on PostgreSQL (as the app role, under row-level
security).
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, select

from app.config import get_settings
from app.services.bulk import expansion, wizard
from app.services.bulk import recipients as ri
from app.services.messaging import MessagingService
from db.enums import Channel, Language, MessageClass, OptOutSource, Role
from db.models import BulkJob, Message, NotificationPreference, Patient
from db.session import tenant_session
from db.types import utcnow
from tests.delivery.conftest import RecordingQueue
from tests.factories import make_patient, make_tenant, make_user, script_runtime

NUMBERS = ["+966500000001", "+966500000002", "+966500000003", "+966500000004"]
UNKNOWN = "+966500000009"
RECIPIENTS = [*NUMBERS, UNKNOWN, "not a number", "0500000001"]  # an unknown number, an invalid one, a duplicate
BODY_EN, BODY_AR = "Hello {{ patient_name }}", "مرحبا {{ patient_name }}"


def _clinic(engine: Engine, slug: str, settings: dict[str, dict]) -> uuid.UUID:
    """Four patients on NUMBERS with the same names in every clinic; ``settings`` per number."""
    tenant = make_tenant(engine, slug)
    for i, number in enumerate(NUMBERS):
        own = settings.get(number, {})
        patient = make_patient(engine, tenant, phone=number, name_en=f"Patient {i}", name_ar=f"مريض {i}",
                               language=own.get("language", Language.EN))
        if "preference" in own:
            with tenant_session(engine, tenant) as session:
                session.add(NotificationPreference(patient_id=patient, **own["preference"]))
    return tenant


def _rows(engine: Engine, tenant: uuid.UUID, bulk_job_id: uuid.UUID) -> set[tuple]:
    with tenant_session(engine, tenant) as session:
        patients = dict(session.execute(select(Patient.id, Patient.tenant_id)).all())
        rows = session.execute(select(Message.recipient, Message.patient_id, Message.language, Message.body,
                                      Message.status, Message.status_reason, Message.message_class)
                               .where(Message.bulk_job_id == bulk_job_id)).all()
    assert all(patients.get(r.patient_id, tenant) == tenant for r in rows), "a patient of another clinic"
    return {tuple(r) for r in rows}


def _refusals(engine: Engine, tenant: uuid.UUID, bulk_job_id: uuid.UUID) -> list[tuple]:
    with tenant_session(engine, tenant) as session:
        job = session.get(BulkJob, bulk_job_id)
        assert job is not None
        return sorted((r["row"], r["recipient"], r["reason"]) for r in job.rejections)


def _by_the_wizard(engine: Engine, tenant: uuid.UUID, message_class: MessageClass) -> uuid.UUID:
    """Paste the list, review, confirm, and let the worker's job expand it: what the Bulk send page does."""
    admin = make_user(engine, tenant, f"admin-{uuid.uuid4().hex[:6]}", Role.ADMIN)
    queue = RecordingQueue()
    with tenant_session(engine, tenant) as session:
        imported = ri.to_recipients(ri.read_pasted("\n".join(RECIPIENTS)), ri.ColumnMapping(contact="recipient"),
                                    Channel.SMS, "SA")
        draft = wizard.Draft(idempotency_key=wizard.new_draft_key(), channel=Channel.SMS,
                                  audience={"kind": "list", "recipients": imported.recipients},
                                  body_en=BODY_EN, body_ar=BODY_AR, message_class=message_class,
                                  import_rejections=tuple(imported.rejected))
        session.info["queue"] = queue
        created = wizard.confirm(session, admin, draft, typed_count=len(imported.recipients))
    [(function, (job_id,), _delay)] = queue.calls  # confirm asked for the expansion after its commit
    assert function == expansion.EXPAND_JOB and job_id == str(created.bulk_job_id)
    expansion.expand(script_runtime(engine, queue), created.bulk_job_id)
    return created.bulk_job_id


@pytest.mark.parametrize("message_class", [MessageClass.SERVICE, MessageClass.PROMOTIONAL])
def test_the_scripts_adapter_and_the_wizard_write_the_same_rows(engine: Engine,
                                                                message_class: MessageClass) -> None:
    opted_out = {"sms_opt_in": False, "opted_out_at": utcnow(), "opt_out_source": OptOutSource.STAFF}
    a = _clinic(engine, "clinic-a", {
        NUMBERS[0]: {"language": Language.AR},
        NUMBERS[1]: {"preference": opted_out},
        NUMBERS[2]: {"preference": {"language": Language.AR, "promotional_consent": True}},
        NUMBERS[3]: {"preference": {"promotional_consent": True}},
    })
    _clinic(engine, "clinic-b", {  # the same people, the other way round
        NUMBERS[0]: {"preference": opted_out},
        NUMBERS[1]: {"language": Language.AR, "preference": {"promotional_consent": True}},
        NUMBERS[3]: {"preference": {"sms_opt_in": False}},
    })

    by_script = MessagingService(script_runtime(engine, RecordingQueue())).send_bulk_messages(
        RECIPIENTS, BODY_EN, "SMS", a, message_ar=BODY_AR, message_class=message_class)
    by_wizard = _by_the_wizard(engine, a, message_class)

    script_rows, wizard_rows = _rows(engine, a, by_script.bulk_job_id), _rows(engine, a, by_wizard)
    assert script_rows == wizard_rows
    assert _refusals(engine, a, by_script.bulk_job_id) == _refusals(engine, a, by_wizard)
    assert by_script.accepted == len(script_rows) == 4
    assert [(r.row, r.recipient) for r in by_script.rejected] == [
        (5, UNKNOWN), (6, "not a number"), (7, "0500000001")]

    # What the rows say, so both agreeing is not both being wrong: clinic A's settings, never B's.
    by_number = {r[0]: r for r in script_rows}
    assert by_number[NUMBERS[0]][2:4] == (Language.AR, "مرحبا مريض 0")
    assert by_number[NUMBERS[1]][4].value == "suppressed" and "opted out of SMS" in by_number[NUMBERS[1]][5]
    assert by_number[NUMBERS[2]][2] == Language.AR
    assert by_number[NUMBERS[3]][4].value in ("queued", "scheduled") and by_number[NUMBERS[3]][2] == Language.EN
    if message_class == MessageClass.PROMOTIONAL:  # no recorded consent: suppressed, with the reason
        assert by_number[NUMBERS[0]][4].value == "suppressed" and "consent" in by_number[NUMBERS[0]][5]
    else:
        assert by_number[NUMBERS[0]][4].value in ("queued", "scheduled")


def test_the_scripts_adapter_is_not_asked_to_type_a_count(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above BULK_CONFIRM_THRESHOLD a person types what will be sent; a program sending on purpose does not."""
    opted_out = {"sms_opt_in": False, "opted_out_at": utcnow(), "opt_out_source": OptOutSource.STAFF}
    a = _clinic(engine, "clinic-a", {NUMBERS[1]: {"preference": opted_out}})
    monkeypatch.setenv("BULK_CONFIRM_THRESHOLD", "2")
    get_settings.cache_clear()
    try:
        result = MessagingService(script_runtime(engine, RecordingQueue())).send_bulk_messages(
            NUMBERS, "Closed on Friday.", "SMS", a)
    finally:
        get_settings.cache_clear()
    assert result.accepted == 4
