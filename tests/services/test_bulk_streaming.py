"""A bulk job streams (issue 18): its recipients are prepared a chunk at a time, each chunk committed
and queued before the next is written, in a resumable order, so a crash resumes after the last
committed chunk and no recipient is ever written twice."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, func, select

from app.services.bulk import expansion, jobs
from app.services.bulk import recipients as ri
from app.services.bulk.wizard import Draft
from db.enums import BulkJobStatus, Channel, MessageStatus, Role
from db.models import BulkJob, Message
from db.session import tenant_session
from tests.factories import make_tenant, make_user
from tests.services.test_bulk_send import FakeRuntime, add_patients, confirm, draft

TEXTS = {"naming no one": "Closed Friday. {{ clinic_name }}", "naming the patient": "Hi {{ patient_first_name }}"}


@pytest.fixture
def clinic(engine: Engine):  # type: ignore[no-untyped-def]
    tenant_id = make_tenant(engine, "clinic-a")  # the neighbouring clinic shares the numbers
    return engine, tenant_id, make_user(engine, tenant_id, "amira", Role.ADMIN)


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expansion, "PREPARE_CHUNK", 3)


def _rows(engine: Engine, clinic_id, job_id) -> list:  # type: ignore[no-untyped-def]
    with tenant_session(engine, clinic_id) as session:
        return session.execute(select(Message.patient_id, Message.recipient, Message.status, Message.delivery_job_id)
                               .where(Message.bulk_job_id == job_id)).all()


def _job(engine: Engine, clinic_id, job_id) -> BulkJob:  # type: ignore[no-untyped-def]
    with tenant_session(engine, clinic_id) as session:
        job = session.get(BulkJob, job_id)
        assert job is not None
        session.expunge(job)
        return job


@pytest.mark.parametrize("text", list(TEXTS))
def test_each_chunk_is_queued_before_the_next_is_written(clinic, monkeypatch, text: str) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    add_patients(engine, tenant_id, 10)
    created = confirm(engine, admin, draft({"kind": "all"}, body=TEXTS[text]))
    runtime = FakeRuntime(engine)
    queued_when_writing: list[int] = []
    real = expansion.write_chunk

    def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        queued_when_writing.append(sum(len(ids) for _, ids in runtime.queue.batches))
        return real(*args, **kwargs)

    monkeypatch.setattr(expansion, "write_chunk", watched)
    result = expansion.expand(runtime, created.bulk_job_id)  # type: ignore[arg-type]

    assert result["written"] == 10 and result["queued"] == 10
    # Chunk k is queued on a second thread while chunk k+1 is written: queued by the time k+2 is.
    assert all(a <= b <= c for a, b, c in zip([0, 0, 3, 6, 9], queued_when_writing, [0, 3, 6, 9, 10], strict=True)), (
        f"chunk k queued before chunk k+2 was written (and never ahead of its commit): {queued_when_writing}")
    assert sum(len(ids) for _, ids in runtime.queue.batches) == 10
    rows = _rows(engine, tenant_id, created.bulk_job_id)
    assert len(rows) == len({r.patient_id for r in rows}) == 10
    assert len({r.delivery_job_id for r in rows}) == 4
    job = _job(engine, tenant_id, created.bulk_job_id)
    assert (job.status, job.accepted_count, job.prepared_chunks) == (BulkJobStatus.SENDING, 10, 4)
    assert job.prepared_at is not None


@pytest.mark.parametrize("text", list(TEXTS))
def test_a_crash_resumes_after_the_last_committed_chunk(clinic, monkeypatch, text: str) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    add_patients(engine, tenant_id, 10)
    created = confirm(engine, admin, draft({"kind": "all"}, body=TEXTS[text]))
    runtime = FakeRuntime(engine)
    name = "_insert_select" if text == "naming no one" else "_write_rendered"
    real, calls = getattr(expansion, name), []

    def dies_on_the_third(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("worker killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(expansion, name, dies_on_the_third)
    with pytest.raises(RuntimeError):
        expansion.expand(runtime, created.bulk_job_id)  # type: ignore[arg-type]
    assert len(_rows(engine, tenant_id, created.bulk_job_id)) == 6, "two chunks committed, the third rolled back"
    job = _job(engine, tenant_id, created.bulk_job_id)
    assert job.status == BulkJobStatus.SENDING and job.prepared_at is None, "sending while not all prepared"
    assert sum(len(ids) for _, ids in runtime.queue.batches) == 6

    runtime.clock = lambda: job.updated_at + dt.timedelta(hours=1)  # type: ignore[method-assign]
    assert expansion.resume_lost(runtime, runtime.clock()) == 1  # type: ignore[arg-type]  # the sweeper asks again
    assert jobs.complete_finished(runtime, runtime.clock()) == 0  # type: ignore[arg-type]  # not while preparing
    monkeypatch.setattr(expansion, name, real)
    expansion.expand(runtime, created.bulk_job_id)  # type: ignore[arg-type]
    expansion.expand(runtime, created.bulk_job_id)  # type: ignore[arg-type]  # and once more: nothing new
    rows = _rows(engine, tenant_id, created.bulk_job_id)
    assert len(rows) == len({r.patient_id for r in rows}) == 10
    job = _job(engine, tenant_id, created.bulk_job_id)
    assert job.prepared_at is not None and job.accepted_count == 10


def test_a_list_is_prepared_in_chunks_by_position(clinic) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    table = ri.read_csv(("phone,name\n" + "".join(f"05000000{n:02d},P{n}\n" for n in range(7))).encode())
    imported = ri.to_recipients(table, ri.ColumnMapping(contact="phone", name="name"), Channel.SMS, "SA")
    created = confirm(engine, admin, Draft(idempotency_key="list-chunks", audience={
        "kind": "list", "recipients": imported.recipients}, channel=Channel.SMS, body_en="Hi {{ patient_name }}"))
    runtime = FakeRuntime(engine)
    assert expansion.expand(runtime, created.bulk_job_id)["written"] == 7  # type: ignore[arg-type]
    rows = _rows(engine, tenant_id, created.bulk_job_id)
    assert sorted(r.recipient for r in rows) == sorted(r["recipient"] for r in imported.recipients)
    job = _job(engine, tenant_id, created.bulk_job_id)
    assert (job.prepared_through, job.prepared_chunks) == ("7", 3)
    with tenant_session(engine, tenant_id) as session:
        assert session.scalar(select(func.count()).where(Message.bulk_job_id == created.bulk_job_id,
                                                         Message.status == MessageStatus.QUEUED)) == 7


def test_a_cancelled_job_stops_being_prepared(clinic, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, *_ = clinic
    add_patients(engine, tenant_id, 10)
    created = confirm(engine, admin, draft({"kind": "all"}))
    runtime = FakeRuntime(engine)
    real = expansion.write_chunk
    chunks: list[int] = []

    def cancel_after_the_first(*args, **kwargs):  # type: ignore[no-untyped-def]
        part = real(*args, **kwargs)
        chunks.append(1)
        if len(chunks) == 1:
            with tenant_session(engine, tenant_id) as session:
                jobs.cancel(session, admin, created.bulk_job_id)
        return part

    monkeypatch.setattr(expansion, "write_chunk", cancel_after_the_first)
    expansion.expand(runtime, created.bulk_job_id)  # type: ignore[arg-type]
    assert len(_rows(engine, tenant_id, created.bulk_job_id)) == 3, "nothing prepared after the cancel"
    assert _job(engine, tenant_id, created.bulk_job_id).status == BulkJobStatus.CANCELLED
