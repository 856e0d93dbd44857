"""Factories that build real rows through the services, for tests that read like specifications."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine, text

from app.services import staff, tenants
from app.services.permissions import Actor
from db.enums import Language, Role
from db.models import Base, Patient, Tenant, User
from db.session import system_session, tenant_session

DEFAULT_PASSWORD = "correct-horse-battery"
T = TypeVar("T")


def make_tenant(engine: Engine, slug: str = "clinic-a", name: str | None = None) -> uuid.UUID:
    with system_session(engine) as session:
        return tenants.create_tenant(session, name=name or slug.title(), slug=slug).id


def make_user(
    engine: Engine, tenant_id: uuid.UUID, username: str, role: Role = Role.ADMIN,
    password: str = DEFAULT_PASSWORD,
) -> Actor:
    with tenant_session(engine, tenant_id) as session:
        member = staff.create_user(session, Actor.system(tenant_id, name="command line"), username=username,
                                   password=password, role=role)
        tenant = session.get(Tenant, tenant_id)
        assert tenant is not None
        return Actor(
            user_id=member.id, tenant_id=tenant_id, username=member.username,
            display_name=member.display_name, role=member.role, tenant_name=tenant.name,
        )


def make_patient(
    engine: Engine, tenant_id: uuid.UUID, *, name_en: str = "Sara Ali", name_ar: str = "سارة علي",
    phone: str = "+966501234567", email: str | None = "sara@example.com",
    language: Language = Language.EN,
) -> uuid.UUID:
    with tenant_session(engine, tenant_id) as session:
        patient = Patient(name_en=name_en, name_ar=name_ar, phone_e164=phone, email=email, language=language)
        session.add(patient)
        session.flush()
        return patient.id


def user_row(engine: Engine, username: str) -> User:
    with system_session(engine) as session:
        from sqlalchemy import select

        user = session.scalar(select(User).where(User.username == username))
        assert user is not None
        session.expunge(user)
        return user


def make_message(
    engine: Engine, tenant_id: uuid.UUID, *, recipient: str = "+966501234567", status: str = "delivered",
    channel: str = "sms", created_at: dt.datetime | None = None, **fields: object,
) -> uuid.UUID:
    """A message row as the delivery pipeline would have left it (issue 6: explorer tests)."""
    from db.models import Message

    with tenant_session(engine, tenant_id) as session:
        at = created_at or dt.datetime.now(dt.UTC)
        message = Message(recipient=recipient, status=status, channel=channel, body=fields.pop("body", "Hello"),
                          created_at=at, updated_at=at, **fields)
        session.add(message)
        session.flush()
        return message.id


def system_connection(engine: Engine):  # type: ignore[no-untyped-def]
    """A test's own cross-clinic SQL (setup and inspection), through the system entry: on PostgreSQL
    a plain connection of the app role sees no clinic's rows."""
    from db.session import SYSTEM, scoped_connection

    return scoped_connection(engine, SYSTEM)


OWNER_ENGINES: dict[str, Engine] = {}  # the app role's PostgreSQL database name -> its owner's engine


def owner_connection(engine: Engine):  # type: ignore[no-untyped-def]
    """A transaction as the tables' owner (what only migrations and an operator do: DDL, TRUNCATE);
    on SQLite the engine itself."""
    if engine.dialect.name == "postgresql":
        engine = OWNER_ENGINES[engine.url.database or ""]
    return engine.begin()


def empty_all_tables(engine: Engine) -> None:
    """Empty every table (on PostgreSQL as the owner: TRUNCATE is not the app role's right)."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with owner_connection(engine) as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(tables) + " CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


def call(engine: Engine, who: Actor | uuid.UUID, fn: Callable[..., T], *args: Any, queue: Any = None,
         **kwargs: Any) -> T:
    """``fn(session, actor, ...)`` in one unit of work of the actor's clinic, as a page's ``session.call``
    does. A clinic id stands for a script in that clinic (``Actor.system``, an admin). The jobs ``fn``
    registers go on ``queue`` (else the process's) once the unit of work commits."""
    from app.services.queueing import use_queue

    actor = who if isinstance(who, Actor) else Actor.system(who, name="test script")
    with tenant_session(engine, actor.tenant_id) as session:
        if queue is not None:
            use_queue(session, queue)
        return fn(session, actor, *args, **kwargs)


def script_runtime(engine: Engine, queue: Any) -> Any:
    """A runtime on ``engine`` whose jobs go on ``queue``: what ``MessagingService(runtime)`` needs in a test."""
    from app.config import Settings
    from app.delivery.ratelimit import LocalRateLimiter
    from app.delivery.runtime import Runtime
    from app.providers.registry import build_providers

    settings = Settings(database_url=engine.url.render_as_string(hide_password=False), redis_url=None,
                        dev_playback_delay_seconds=0)
    return Runtime(engine, settings, build_providers(settings), LocalRateLimiter(), queue)


def make_reply(
    engine: Engine, tenant_id: uuid.UUID, *, address: str = "+966501234567", body: str = "Hello",
    channel: str = "whatsapp", received_at: dt.datetime | None = None, intent: str = "unclear",
    outcome: str = "", button_text: str = "", unread: bool = True, provider_message_id: str | None = None,
) -> uuid.UUID:
    """A patient's reply filed on the clinic's thread for ``address`` as the inbound webhook files it
    (issue 20: the inbox's tests): the thread is created for the address (its patient: this clinic's
    patient with that number, or none), reopened, its unread count, wait, last intent and time moved on,
    and a WhatsApp reply opens the patient's 24-hour window. Returns the thread's id."""
    from sqlalchemy import select

    from db.models import Conversation, InboundMessage

    at = received_at or dt.datetime.now(dt.UTC)
    with tenant_session(engine, tenant_id) as session:
        patient = session.scalar(select(Patient).where(Patient.phone_e164 == address,
                                                       Patient.deleted_at.is_(None)).limit(1))
        thread = session.scalar(select(Conversation).where(Conversation.address == address))
        if thread is None:
            thread = Conversation(address=address, patient_id=patient.id if patient else None, unread_count=0)
            session.add(thread)
            session.flush()
        session.add(InboundMessage(
            conversation_id=thread.id, patient_id=thread.patient_id, channel=channel, from_address=address,
            body=body, button_text=button_text, received_at=at, intent=intent, outcome=outcome,
            provider_message_id=provider_message_id or f"SM{uuid.uuid4().hex}",
            read_at=None if unread else at))
        thread.state = "open"
        thread.done_at = thread.done_by_id = None
        thread.unread_count += 1 if unread else 0
        thread.waiting_since = thread.waiting_since or (at if unread else None)
        thread.last_intent = intent
        thread.last_inbound_at = max(at, thread.last_inbound_at or at)
        if channel == "whatsapp" and patient is not None:
            patient.whatsapp_last_inbound_at = max(at, patient.whatsapp_last_inbound_at or at)
        return thread.id
