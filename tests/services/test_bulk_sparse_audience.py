"""A bulk job's chunks are windows of the clinic's patients by id, and the audience is decided inside
each window, so a chunk may write no row. A job nobody in whose audience can be sent to any more is
completed at once (not left 'sending' with nothing to send), and a job whose few recipients sit in the
last window is prepared and sent to them only, never to the neighbouring clinic's same-named patients."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, delete, select

from app.services.bulk import expansion
from db.enums import BulkJobStatus, MessageStatus, Role
from db.models import BulkJob, Message, PatientTag
from db.session import system_session, tenant_session
from tests.factories import make_tenant, make_user
from tests.services.test_bulk_send import FakeRuntime, add_patients, confirm, draft


@pytest.fixture
def clinics(engine: Engine):  # type: ignore[no-untyped-def]
    """Two clinics whose ten patients share names and numbers, each tagged 'vip' in clinic b."""
    a, b = make_tenant(engine, "clinic-a"), make_tenant(engine, "clinic-b")
    add_patients(engine, b, 10, tags=("vip",))
    return engine, a, b, make_user(engine, a, "amira", Role.ADMIN)


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expansion, "PREPARE_CHUNK", 3)


def _job(engine: Engine, clinic, job_id) -> BulkJob:  # type: ignore[no-untyped-def]
    with tenant_session(engine, clinic) as session:
        job = session.get(BulkJob, job_id)
        assert job is not None
        session.expunge(job)
        return job


def _rows(engine: Engine, job_id) -> list:  # type: ignore[no-untyped-def]
    with system_session(engine) as session:
        return session.execute(select(Message.tenant_id, Message.patient_id, Message.status, Message.delivery_job_id)
                               .where(Message.bulk_job_id == job_id)).all()


def test_a_job_whose_audience_is_gone_is_completed_not_left_sending(clinics) -> None:  # type: ignore[no-untyped-def]
    engine, a, _b, admin = clinics
    add_patients(engine, a, 10, tags=("vip",))
    created = confirm(engine, admin, draft({"kind": "tags", "any_of": ["vip"]}))
    with tenant_session(engine, a) as session:  # the tag is taken off everyone before the job is prepared
        session.execute(delete(PatientTag).where(PatientTag.tenant_id == a, PatientTag.tag == "vip"))

    result = expansion.expand(FakeRuntime(engine), created.bulk_job_id)  # type: ignore[arg-type]

    assert result["written"] == 0 and _rows(engine, created.bulk_job_id) == []
    job = _job(engine, a, created.bulk_job_id)
    assert job.status == BulkJobStatus.COMPLETED, "nobody to send to: completed, not 'sending' nothing"
    assert job.prepared_at is not None and job.completed_at is not None and job.started_at is None
    assert job.accepted_count == 0


def test_a_few_recipients_in_the_last_window_are_prepared_and_only_they(clinics) -> None:  # type: ignore[no-untyped-def]
    engine, a, b, admin = clinics
    ids = sorted(add_patients(engine, a, 10))
    with tenant_session(engine, a) as session:
        session.add(PatientTag(patient_id=ids[-1], tag="vip"))  # the clinic's last patient by id
    created = confirm(engine, admin, draft({"kind": "tags", "any_of": ["vip"]}))
    runtime = FakeRuntime(engine)

    assert expansion.write_chunk(runtime, created.bulk_job_id) is not None  # type: ignore[arg-type]
    job = _job(engine, a, created.bulk_job_id)
    assert (job.status, job.started_at, job.accepted_count) == (BulkJobStatus.EXPANDING, None, 0), (
        "a window with no recipient in it does not start the job")

    result = expansion.expand(runtime, created.bulk_job_id)  # type: ignore[arg-type]

    assert result["written"] == result["queued"] == 1
    rows = _rows(engine, created.bulk_job_id)
    assert [(r.tenant_id, r.patient_id, r.status) for r in rows] == [(a, ids[-1], MessageStatus.QUEUED)]
    assert runtime.queue.batches == [(rows[0].delivery_job_id, [str(_message_id(engine, created.bulk_job_id))])]
    job = _job(engine, a, created.bulk_job_id)
    assert job.status == BulkJobStatus.SENDING and job.started_at is not None and job.prepared_at is not None
    assert job.accepted_count == 1
    with tenant_session(engine, b) as session:
        assert session.scalars(select(Message.id).where(Message.bulk_job_id == created.bulk_job_id)).all() == []


def _message_id(engine: Engine, job_id):  # type: ignore[no-untyped-def]
    with system_session(engine) as session:
        return session.scalar(select(Message.id).where(Message.bulk_job_id == job_id))
