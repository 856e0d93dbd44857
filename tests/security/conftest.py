"""Two clinics with one user per role, a patient, a template and messages: the ground the security
tables (audit coverage, role matrix, tenant isolation) walk over."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from typing import Any, TypeVar

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, update

from app.services import passwords, templates
from app.services.messaging import MessagingService
from app.services.permissions import Actor
from db.enums import Channel, MessageStatus, Role
from db.models import Message
from db.session import system_session, tenant_session
from tests.delivery.conftest import RecordingQueue
from tests.factories import make_patient, make_tenant, make_user

T = TypeVar("T")


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 parameters: these tests are about who may do what, not about hashing cost."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@dataclass
class Clinic:
    tenant_id: uuid.UUID
    admin: Actor
    front_desk: Actor
    analyst: Actor
    patient_id: uuid.UUID
    template_id: uuid.UUID

    def by_role(self, role: Role) -> Actor:
        return {Role.ADMIN: self.admin, Role.FRONT_DESK: self.front_desk, Role.ANALYST: self.analyst}[role]


@dataclass
class World:
    engine: Engine
    queue: RecordingQueue
    a: Clinic
    b: Clinic
    _numbers: Iterator[int]

    @property
    def messaging(self) -> MessagingService:
        return MessagingService(self.engine, self.queue)

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self._numbers)}"

    def call(self, fn: Callable[..., T], actor: Actor, *args: Any, **kwargs: Any) -> T:
        """``fn(session, actor, ...)`` in one unit of work of the actor's clinic (as a page does)."""
        with tenant_session(self.engine, actor.tenant_id) as session:
            return fn(session, actor, *args, **kwargs)

    def new_template(self, clinic: Clinic | None = None) -> uuid.UUID:
        clinic = clinic or self.a
        return self.call(templates.create_template, clinic.admin, code=self.unique("t"), name="Temporary",
                         channel=Channel.SMS, body_en="Hello").id

    def queued_message(self, clinic: Clinic | None = None) -> uuid.UUID:
        """A message waiting in the queue (cancellable), sent by the clinic's front desk."""
        clinic = clinic or self.a
        return self.messaging.send_message(
            clinic.tenant_id, Channel.SMS, patient_id=clinic.patient_id, text="Your visit is tomorrow",
        ).message_id

    def failed_message(self, clinic: Clinic | None = None) -> uuid.UUID:
        """A message that failed (retryable)."""
        message_id = self.queued_message(clinic)
        with system_session(self.engine) as session:
            session.execute(update(Message).where(Message.id == message_id).values(status=MessageStatus.FAILED))
        return message_id

    def bulk_job(self, clinic: Clinic | None = None) -> uuid.UUID:
        clinic = clinic or self.a
        return self.messaging.send_bulk_messages(
            recipients=["+966501234567"], message="Clinic closed on Friday", channel="SMS",
            tenant_id=clinic.tenant_id,
        ).bulk_job_id


def _clinic(engine: Engine, slug: str, prefix: str, phone: str) -> Clinic:
    tenant_id = make_tenant(engine, slug)
    admin = make_user(engine, tenant_id, f"{prefix}.admin", Role.ADMIN)
    clinic = Clinic(
        tenant_id=tenant_id, admin=admin,
        front_desk=make_user(engine, tenant_id, f"{prefix}.desk", Role.FRONT_DESK),
        analyst=make_user(engine, tenant_id, f"{prefix}.analyst", Role.ANALYST),
        patient_id=make_patient(engine, tenant_id, phone=phone), template_id=uuid.uuid4(),
    )
    with tenant_session(engine, tenant_id) as session:
        clinic.template_id = templates.create_template(
            session, admin, code="reminder", name="Reminder", channel=Channel.SMS,
            body_en="Hello {{ patient_name }}, see you at {{ clinic_name }}.",
        ).id
    return clinic


@pytest.fixture
def world(engine: Engine) -> World:
    return World(
        engine=engine, queue=RecordingQueue(),
        a=_clinic(engine, "clinic-a", "a", "+966501234567"),
        b=_clinic(engine, "clinic-b", "b", "+966507654321"),
        _numbers=count(1),
    )
