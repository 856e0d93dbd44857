"""Two clinics with one user per role, a patient, a template and messages: the ground the security
tables (audit coverage, role matrix, tenant isolation) walk over."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any, TypeVar

import pytest
from argon2 import PasswordHasher
from cryptography.fernet import Fernet
from sqlalchemy import Engine, update

from app.analytics.store import Period
from app.config import Settings
from app.services import message_export, messaging, passwords, templates, whatsapp_templates
from app.services.bulk import wizard
from app.services.bulk.wizard import Draft
from app.services.explorer import MessageFilter
from app.services.messaging import MessagingService
from app.services.permissions import Actor
from app.services.queueing import use_queue
from db.enums import Channel, MessageStatus, Role
from db.models import Message
from db.session import system_session, tenant_session
from db.types import utcnow
from tests.delivery.conftest import RecordingQueue
from tests.factories import make_patient, make_tenant, make_user, script_runtime

T = TypeVar("T")
CONTENT_SID = "HX" + "c" * 32
# Enough to ask the Content API (whose answer the tests stand in for) and to seal clinic credentials.
SETTINGS = Settings(twilio_account_sid="AC" + "0" * 32, twilio_auth_token="not-a-real-token",
                    credentials_key=Fernet.generate_key().decode())


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
    export_dir: Path

    @property
    def messaging(self) -> MessagingService:
        """The scripts' bulk adapter, on this world's database and queue."""
        return MessagingService(script_runtime(self.engine, self.queue))

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self._numbers)}"

    def call(self, fn: Callable[..., T], actor: Actor, *args: Any, **kwargs: Any) -> T:
        """``fn(session, actor, ...)`` in one unit of work of the actor's clinic (as a page does)."""
        with tenant_session(self.engine, actor.tenant_id) as session:
            use_queue(session, self.queue)  # the jobs it starts are recorded here, after the commit
            return fn(session, actor, *args, **kwargs)

    def new_template(self, clinic: Clinic | None = None) -> uuid.UUID:
        clinic = clinic or self.a
        return self.call(templates.create_template, clinic.admin, code=self.unique("t"), name="Temporary",
                         channel=Channel.SMS, body_en="Hello").id

    def queued_message(self, clinic: Clinic | None = None) -> uuid.UUID:
        """A message waiting in the queue (cancellable), sent by the clinic's front desk."""
        clinic = clinic or self.a
        return self.call(messaging.send, clinic.front_desk, Channel.SMS, patient_id=clinic.patient_id,
                         text="Your visit is tomorrow").message_id

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

    def list_draft(self, recipients: int = 1) -> Draft:
        """A bulk-send draft to a custom list (front desk may send one of at most 20)."""
        return Draft(idempotency_key=wizard.new_draft_key(), channel=Channel.SMS, body_en="Closed on Friday",
                     audience={"kind": "list", "recipients": [{"row": i + 1, "recipient": f"+96650{i:07d}"}
                                                              for i in range(recipients)]})

    def everyone_draft(self) -> Draft:
        """A bulk-send draft to every patient of the clinic (admins only)."""
        return Draft(idempotency_key=wizard.new_draft_key(), channel=Channel.SMS, body_en="Closed on Friday",
                     audience={"kind": "all"})

    def wizard_job(self, actor: Actor) -> uuid.UUID:
        """A bulk job confirmed in the wizard by ``actor`` (a one-recipient custom list)."""
        return self.call(wizard.confirm, actor, self.list_draft()).bulk_job_id

    def whatsapp_template(self, clinic: Clinic | None = None, *, linked: bool = False) -> uuid.UUID:
        clinic = clinic or self.a
        template_id = self.call(templates.create_template, clinic.admin, code=self.unique("wa"), name="WhatsApp",
                                channel=Channel.WHATSAPP, body_en="Hi {{ patient_name }}").id
        if linked:
            self.call(whatsapp_templates.set_whatsapp_link, clinic.admin, template_id, content_sid=CONTENT_SID,
                      variable_map={"1": "patient_name"}, fallback_channel=None)
        return template_id

    def refresh_approval(self, actor: Actor, template_id: uuid.UUID) -> whatsapp_templates.WhatsAppLink:
        """The editor's refresh button, with Twilio's Content API answering "approved"."""
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(whatsapp_templates, "fetch_approval", lambda settings, account, sid: ("approved", ""))
            return self.call(whatsapp_templates.refresh_approval, actor, template_id, settings=SETTINGS)

    def export_now(self, actor: Actor) -> bytes:
        out = io.BytesIO()
        self.call(message_export.export_csv, actor, MessageFilter(), message_export.DEFAULT_COLUMNS, out)
        return out.getvalue()

    def requested_export(self, actor: Actor) -> uuid.UUID:
        return self.call(message_export.request_export, actor, MessageFilter(), message_export.DEFAULT_COLUMNS).id

    def finished_export(self, actor: Actor) -> uuid.UUID:
        """A background export requested by ``actor`` whose job has run (file in ``export_dir``)."""
        export_id = self.requested_export(actor)
        message_export.run_export(self.engine, actor.tenant_id, export_id, directory=self.export_dir)
        return export_id


def this_week() -> Period:
    """The last 7 days up to a minute from now (so messages made just before the call are in it)."""
    return Period.last_days(7, now=utcnow() + dt.timedelta(minutes=1))


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
def world(engine: Engine, tmp_path: Path) -> World:
    return World(
        engine=engine, queue=RecordingQueue(),
        a=_clinic(engine, "clinic-a", "a", "+966501234567"),
        b=_clinic(engine, "clinic-b", "b", "+966507654321"),
        _numbers=count(1), export_dir=tmp_path,
    )
