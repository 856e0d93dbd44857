"""The worker's bulk expansion job end to end: confirm, expand (RQ job function), deliver the batches."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from app.config import Settings
from app.delivery.ratelimit import LocalRateLimiter
from app.delivery.runtime import Runtime, install_runtime
from app.providers.registry import build_providers
from app.services.bulk import wizard
from app.services.bulk.wizard import Draft
from db.enums import BulkJobStatus, Channel, MessageStatus, Role
from db.models import BulkJob, Message
from db.session import tenant_session
from tests.factories import make_tenant, make_user
from tests.services.test_bulk_send import RecordingQueue, add_patients
from worker import jobs


@pytest.fixture
def runtime(engine: Engine) -> Iterator[Runtime]:
    settings = Settings(database_url=engine.url.render_as_string(hide_password=False), dev_playback_delay_seconds=0)
    built = Runtime(engine, settings, build_providers(settings), LocalRateLimiter(), RecordingQueue())
    install_runtime(built)
    yield built
    install_runtime(None)


def test_confirmed_job_is_expanded_by_the_worker_and_delivered_once(engine: Engine, runtime: Runtime) -> None:
    tenant_id = make_tenant(engine, "clinic-a")
    admin = make_user(engine, tenant_id, "amira", Role.ADMIN)
    add_patients(engine, tenant_id, 7)
    with tenant_session(engine, tenant_id) as s:
        created = wizard.confirm(s, admin, Draft(idempotency_key="k", audience={"kind": "all"},
                                                      channel=Channel.SMS, body_en="Closed on Friday"))
    func, args = runtime.queue.calls[-1]  # confirm asked the worker for the expansion once it committed
    assert func == "worker.jobs.expand_bulk_job"
    assert jobs.expand_bulk_job(*args)["written"] == 7
    assert jobs.expand_bulk_job(*args)["written"] == 0  # delivered twice: nothing more
    for job_id, ids in runtime.queue.batches:
        jobs.deliver(job_id, ids)
        jobs.deliver(job_id, ids)  # a job run twice sends once
    with tenant_session(engine, tenant_id) as s:
        statuses = list(s.scalars(select(Message.status)))
        assert len(statuses) == 7 and MessageStatus.QUEUED not in statuses
        assert BulkJobStatus(s.get(BulkJob, created.bulk_job_id).status) == BulkJobStatus.SENDING
