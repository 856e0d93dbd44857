"""Headline numbers of the last seven days (outcomes as ``db.enums.Outcome`` counts them)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select

from app.services.permissions import Actor, Permission, authorize
from db.enums import Outcome, count_of
from db.models import Message, MessageTemplate, Patient, User
from db.tenancy import TenantSession
from db.types import utcnow


@dataclass(frozen=True)
class Headline:
    patients: int
    staff: int
    active_templates: int
    messages_7d: int
    delivered_7d: int
    failed_7d: int
    in_progress: int

    @property
    def success_rate_7d(self) -> float | None:
        """Delivered over messages that reached a delivered or failed outcome."""
        done = self.delivered_7d + self.failed_7d
        return self.delivered_7d / done if done else None


def headline(session: TenantSession, actor: Actor, *, now: dt.datetime | None = None) -> Headline:
    authorize(session, actor, Permission.VIEW_DASHBOARD)
    since = (now or utcnow()) - dt.timedelta(days=7)
    patients = session.scalar(
        select(func.count()).select_from(Patient).where(Patient.deleted_at.is_(None), Patient.is_active.is_(True))
    )
    staff = session.scalar(
        select(func.count()).select_from(User).where(User.deleted_at.is_(None), User.is_active.is_(True))
    )
    templates = session.scalar(
        select(func.count()).select_from(MessageTemplate).where(
            MessageTemplate.deleted_at.is_(None), MessageTemplate.is_active.is_(True)
        )
    )
    row = session.execute(
        select(
            func.count(),
            count_of(Message.channel, Message.status, Outcome.DELIVERED),
            count_of(Message.channel, Message.status, Outcome.FAILED),
            count_of(Message.channel, Message.status, Outcome.IN_PROGRESS),
        ).where(Message.created_at >= since, Message.is_test.is_(False))
    ).one()
    return Headline(
        patients=patients or 0, staff=staff or 0, active_templates=templates or 0,
        messages_7d=row[0], delivered_7d=row[1], failed_7d=row[2], in_progress=row[3],
    )
