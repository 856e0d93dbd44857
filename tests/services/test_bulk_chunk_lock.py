"""While a bulk job's next chunk is being written, its sends, a pause and a cancel do not wait for
it (issue 18: the first provider request of a 1,000,000-recipient send waited for the second
chunk, because the chunk held the job's row and the claim takes that row ``FOR SHARE``); one
preparation of a job runs at a time. Row locks are PostgreSQL's, so these run there only."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from app.delivery.dispatch import lock_jobs_of
from app.services.bulk import expansion, jobs
from db.enums import BulkJobStatus, Role
from db.models import BulkJob, Message, Patient
from db.session import scoped_connection, tenant_session
from tests.factories import make_tenant, make_user
from tests.services.test_bulk_send import FakeRuntime, add_patients, confirm, draft

LOCK_TIMEOUT = "2s"  # far longer than taking a free lock; a lock held by the chunk would hit it


@pytest.fixture(autouse=True)
def _chunks_of_three(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expansion, "PREPARE_CHUNK", 3)


@pytest.fixture
def job(pg_engine: Engine):  # type: ignore[no-untyped-def]
    tenant_id = make_tenant(pg_engine, "clinic-a")  # the neighbouring clinic has patients with the same numbers
    admin = make_user(pg_engine, tenant_id, "amira", Role.ADMIN)
    add_patients(pg_engine, tenant_id, 9)
    created = confirm(pg_engine, admin, draft({"kind": "all"}))
    return pg_engine, tenant_id, admin, created.bulk_job_id


class HeldChunk:
    """The job's next chunk, written in a thread and held open after its rows are inserted."""

    def __init__(self, runtime: FakeRuntime, job_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writing, self.release = threading.Event(), threading.Event()
        self.result: list[Any] = []
        real = expansion._insert_select

        def held(*args: Any) -> None:
            real(*args)
            self.writing.set()
            assert self.release.wait(20)

        monkeypatch.setattr(expansion, "_insert_select", held)
        self.thread = threading.Thread(target=lambda: self.result.append(expansion.write_chunk(runtime, job_id)))

    def __enter__(self) -> HeldChunk:
        self.thread.start()
        assert self.writing.wait(20), "the chunk did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(20)

    @property
    def part(self) -> Any:
        assert not self.thread.is_alive() and len(self.result) == 1
        return self.result[0]


@pytest.fixture
def first_chunk(job):  # type: ignore[no-untyped-def]
    engine, *_, job_id = job
    runtime = FakeRuntime(engine)
    part = expansion.write_chunk(runtime, job_id)  # type: ignore[arg-type]
    assert part is not None
    return runtime, [uuid.UUID(i) for _, ids in part.batches.items() for i in ids]


def _rows(engine: Engine, tenant_id: uuid.UUID, job_id: uuid.UUID) -> list[Any]:
    with tenant_session(engine, tenant_id) as session:
        return session.execute(select(Message.patient_id, Patient.tenant_id).join(
            Patient, Patient.id == Message.patient_id).where(Message.bulk_job_id == job_id)).all()


def test_the_sends_of_a_committed_chunk_do_not_wait_for_the_next(job, first_chunk, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, _admin, job_id = job
    runtime, sendable = first_chunk
    with HeldChunk(runtime, job_id, monkeypatch) as chunk:
        started = time.monotonic()
        with scoped_connection(engine, tenant_id) as claim:
            claim.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            lock_jobs_of(claim, sendable)  # what the claim that sends them does first
        assert time.monotonic() - started < 1.0
    assert chunk.part is not None and chunk.part.rows == 3
    rows = _rows(engine, tenant_id, job_id)
    assert len(rows) == len({r.patient_id for r in rows}) == 6
    assert {r.tenant_id for r in rows} == {tenant_id}, "only the clinic's own patients"


def test_a_cancel_during_a_chunk_returns_at_once_and_the_chunk_is_rolled_back(job, first_chunk, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, admin, job_id = job
    runtime, _ = first_chunk
    with HeldChunk(runtime, job_id, monkeypatch) as chunk:
        started = time.monotonic()
        with tenant_session(engine, tenant_id) as session:
            session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            jobs.cancel(session, admin, job_id)
        assert time.monotonic() - started < 1.0
    assert chunk.part is None, "the chunk saw the cancel"
    assert len(_rows(engine, tenant_id, job_id)) == 3, "nothing of the chunk in flight was kept"
    with tenant_session(engine, tenant_id) as session:
        cancelled = session.get(BulkJob, job_id)
        assert cancelled is not None
        assert (cancelled.status, cancelled.prepared_chunks, cancelled.accepted_count) == (
            BulkJobStatus.CANCELLED, 1, 3)
    assert expansion.expand(runtime, job_id)["written"] == 0  # type: ignore[arg-type]


def test_two_preparations_of_one_job_at_once_write_each_recipient_once(job) -> None:  # type: ignore[no-untyped-def]
    engine, tenant_id, _admin, job_id = job
    barrier, totals = threading.Barrier(2), []

    def prepare() -> None:
        runtime = FakeRuntime(engine)
        barrier.wait()
        totals.append(expansion.expand(runtime, job_id)["written"])  # type: ignore[arg-type]

    threads = [threading.Thread(target=prepare) for _ in range(2)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert sum(totals) == 9
    rows = _rows(engine, tenant_id, job_id)
    assert len(rows) == len({r.patient_id for r in rows}) == 9
    with tenant_session(engine, tenant_id) as session:
        prepared = session.get(BulkJob, job_id)
        assert prepared is not None and prepared.prepared_chunks == 3 and prepared.prepared_at is not None
