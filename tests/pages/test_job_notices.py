"""A bulk job's creator sees, once, on their next page view, that it ended (issue 19, point 4)."""

from __future__ import annotations

from sqlalchemy import select

from db.enums import BulkJobStatus, Channel, MessageStatus, Role
from db.models import BulkJob, Message
from db.session import tenant_session
from db.types import utcnow
from tests.pages.conftest import Clinic, signed_in


def _ended_job(clinic: Clinic, creator_id, name: str, failed: int) -> None:  # type: ignore[no-untyped-def]
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as s:
        job = BulkJob(name=name, channel=Channel.SMS, status=BulkJobStatus.COMPLETED, created_by_id=creator_id,
                      completed_at=utcnow(), prepared_at=utcnow(), audience={"kind": "all"})
        s.add(job)
        s.flush()
        for i in range(3):
            s.add(Message(bulk_job_id=job.id, channel=Channel.SMS, recipient=f"+96650000000{i}", body="Hi",
                          status=MessageStatus.FAILED if i < failed else MessageStatus.DELIVERED))


def toasts(at) -> list[str]:  # type: ignore[no-untyped-def]
    return [t.value for t in at.toast]


def test_the_creator_sees_the_end_once_and_nobody_else_does(clinic: Clinic) -> None:
    front_desk = clinic.by_role(Role.FRONT_DESK)
    _ended_job(clinic, front_desk.user_id, "Friday *closure*", failed=1)
    admin = signed_in(clinic.admin)
    assert toasts(admin) == [], "the admin did not create it"

    at = signed_in(front_desk)
    [notice] = toasts(at)
    assert "completed with failures" in notice and "2 delivered, 1 failed" in notice
    assert "\\*closure\\*" in notice, "the job's name is shown as text, not markdown"
    at.run()
    assert toasts(at) == [], "told once"
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as s:
        assert s.scalar(select(BulkJob.end_noticed_at)) is not None
