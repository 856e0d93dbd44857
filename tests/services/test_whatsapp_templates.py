"""WhatsApp approved templates: linking a Content SID, approval polled from the (loopback) Content
API, and the bulk-send check that refuses an unapproved template before anything is queued."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import Engine, func, select

from app.config import Settings
from app.errors import AppError, PermissionDenied, ValidationError
from app.services import templates, whatsapp_templates
from app.services.messaging import MessagingService
from db.enums import Channel, Role
from db.models import AuditEvent, BulkJob, Message, MessageTemplate
from db.session import system_session, tenant_session
from db.types import utcnow
from tests.delivery.conftest import RecordingQueue
from tests.factories import make_patient, make_tenant, make_user, script_runtime
from tests.peers.fake_twilio import FakeTwilio

SID = "HX" + "c" * 32


@pytest.fixture
def clinic(engine: Engine):  # type: ignore[no-untyped-def]
    tenant = make_tenant(engine)
    admin = make_user(engine, tenant, "admin")
    with tenant_session(engine, tenant) as session:
        whatsapp = templates.create_template(session, admin, code="wa_reminder", name="Reminder",
                                             channel=Channel.WHATSAPP,
                                             body_en="Hi {{ patient_name }}, see you {{ appointment_date }}.")
        sms = templates.create_template(session, admin, code="sms_reminder", name="SMS", channel=Channel.SMS,
                                        body_en="Hi {{ patient_name }}")
    return tenant, admin, whatsapp.id, sms.id


def _settings(fake: FakeTwilio) -> Settings:
    return Settings(twilio_account_sid=fake.account_sid, twilio_auth_token=fake.auth_token,
                    twilio_content_api_base_url=fake.base_url, whatsapp_provider="twilio",
                    twilio_whatsapp_from="+14155238886", provider_timeout_seconds=2.0)


def _link(engine, tenant, admin, template_id, **kwargs):  # type: ignore[no-untyped-def]
    values = {"content_sid": SID, "variable_map": {"1": "patient_name", "2": "appointment_date"},
              "fallback_channel": None} | kwargs
    with tenant_session(engine, tenant) as session:
        return whatsapp_templates.set_whatsapp_link(session, admin, template_id, **values)


def test_link_a_content_template_with_a_variable_map(engine, clinic) -> None:
    tenant, admin, template_id, _sms = clinic
    link = _link(engine, tenant, admin, template_id, fallback_channel="sms")
    assert (link.content_sid, link.variable_map, link.fallback_channel) == (
        SID, {"1": "patient_name", "2": "appointment_date"}, Channel.SMS)
    assert link.approval_status is None and link.status_label == "Not checked yet"
    with system_session(engine) as session:
        [details] = session.scalars(select(AuditEvent.details).where(AuditEvent.action == "template.whatsapp_link"))
    assert details["content_sid"] == SID and details["fallback_channel"] == "sms"


@pytest.mark.parametrize("kwargs,field", [
    ({"content_sid": "HX123"}, "content_sid"),
    ({"content_sid": "MG" + "c" * 32}, "content_sid"),
    ({"variable_map": {"1": "patient_name", "3": "appointment_date"}}, "variable_map"),
    ({"variable_map": {"one": "patient_name"}}, "variable_map"),
    ({"variable_map": {"1": "diagnosis_secret"}}, "variable_map"),
    ({"fallback_channel": "email"}, "fallback_channel"),
])
def test_bad_links_are_refused_and_nothing_changes(engine, clinic, kwargs, field) -> None:
    tenant, admin, template_id, _sms = clinic
    with pytest.raises(ValidationError) as info:
        _link(engine, tenant, admin, template_id, **kwargs)
    assert info.value.field == field
    with system_session(engine) as session:
        assert session.get(MessageTemplate, template_id).whatsapp_content_sid is None


def test_only_whatsapp_templates_link_and_only_template_managers(engine, clinic) -> None:
    tenant, admin, _template, sms_id = clinic
    with pytest.raises(ValidationError):
        _link(engine, tenant, admin, sms_id)
    clerk = make_user(engine, tenant, "desk", role=Role.FRONT_DESK)
    with pytest.raises(PermissionDenied):
        _link(engine, tenant, clerk, clinic[2])


@pytest.mark.parametrize("status,reason,label", [
    ("approved", "", "Approved by WhatsApp"),
    ("pending", "", "Waiting for WhatsApp's review"),
    ("rejected", "The template contains a promotional URL", "Rejected by WhatsApp"),
])
def test_refresh_reads_the_approval_from_the_content_api(engine, clinic, fake_twilio, status, reason, label) -> None:
    tenant, admin, template_id, _sms = clinic
    _link(engine, tenant, admin, template_id)
    fake_twilio.set_content_approval(SID, status, rejection_reason=reason)
    with tenant_session(engine, tenant) as session:
        link = whatsapp_templates.refresh_approval(session, admin, template_id, settings=_settings(fake_twilio))
    assert (link.approval_status, link.approval_reason, link.status_label) == (status, reason, label)
    assert link.checked_at is not None and link.approved is (status == "approved")


def test_refresh_of_an_unknown_sid_and_an_unreachable_api(engine, clinic, fake_twilio) -> None:
    tenant, admin, template_id, _sms = clinic
    _link(engine, tenant, admin, template_id)
    with tenant_session(engine, tenant) as session:
        link = whatsapp_templates.refresh_approval(session, admin, template_id, settings=_settings(fake_twilio))
        assert link.approval_status == "not_found"
        unreachable = _settings(fake_twilio).model_copy(update={"twilio_content_api_base_url": "http://127.0.0.1:9"})
        with pytest.raises(AppError, match="could not be reached"):
            whatsapp_templates.refresh_approval(session, admin, template_id, settings=unreachable)


def test_the_sweep_refreshes_due_templates(engine, clinic, fake_twilio) -> None:
    tenant, admin, template_id, _sms = clinic
    _link(engine, tenant, admin, template_id)
    fake_twilio.set_content_approval(SID, "approved")
    settings = _settings(fake_twilio)
    now = utcnow()
    assert whatsapp_templates.refresh_due_approvals(engine, settings, now) == 1
    assert whatsapp_templates.refresh_due_approvals(engine, settings, now + dt.timedelta(minutes=1)) == 0  # not due
    fake_twilio.set_content_approval(SID, "paused")
    assert whatsapp_templates.refresh_due_approvals(engine, settings, now + dt.timedelta(minutes=11)) == 1
    with system_session(engine) as session:
        assert session.get(MessageTemplate, template_id).whatsapp_approval_status == "paused"
        changes = session.scalars(select(AuditEvent).where(AuditEvent.action == "template.whatsapp_approval")
                                  .order_by(AuditEvent.created_at)).all()
        assert [(e.actor_name, e.details["after"], e.tenant_id) for e in changes] == [
            ("worker", "approved", tenant), ("worker", "paused", tenant)]


def _bulk(engine: Engine, tenant, queue: RecordingQueue, code: str = "wa_reminder"):  # type: ignore[no-untyped-def]
    return MessagingService(script_runtime(engine, queue)).send_bulk_messages(
        recipients=["+966501234567", "+966501234568"], message="", channel="whatsapp", tenant_id=tenant,
        template_code=code)


def _counts(engine: Engine, tenant: uuid.UUID) -> tuple[int, int]:
    with tenant_session(engine, tenant) as session:
        return (session.scalar(select(func.count()).select_from(BulkJob)),
                session.scalar(select(func.count()).select_from(Message)))


def test_bulk_send_refuses_an_unapproved_whatsapp_template_before_anything_is_queued(engine, clinic,
                                                                                     fake_twilio) -> None:
    tenant, admin, template_id, _sms = clinic
    queue = RecordingQueue()
    with pytest.raises(ValidationError, match="not linked"):
        _bulk(engine, tenant, queue)
    _link(engine, tenant, admin, template_id)
    fake_twilio.set_content_approval(SID, "rejected", rejection_reason="Variables at the start")
    with tenant_session(engine, tenant) as session:
        whatsapp_templates.refresh_approval(session, admin, template_id, settings=_settings(fake_twilio))
    with pytest.raises(ValidationError, match="Variables at the start"):
        _bulk(engine, tenant, queue)
    assert _counts(engine, tenant) == (0, 0) and queue.deliveries == []


def test_bulk_send_of_an_approved_template_carries_the_content_variables(engine, clinic, fake_twilio) -> None:
    tenant, admin, _template, _sms = clinic
    make_patient(engine, tenant, phone="+966501234567")
    make_patient(engine, tenant, phone="+966501234568", name_en="Omar Said")
    with tenant_session(engine, tenant) as session:
        template_id = templates.create_template(session, admin, code="wa_hello", name="Hello", channel="whatsapp",
                                                body_en="Hi {{ patient_name }}, we have news.").id
    _link(engine, tenant, admin, template_id, variable_map={"1": "patient_name"})
    fake_twilio.set_content_approval(SID, "approved")
    with tenant_session(engine, tenant) as session:
        whatsapp_templates.refresh_approval(session, admin, template_id, settings=_settings(fake_twilio))
        templates.ensure_sendable_in_bulk(session, session.get(MessageTemplate, template_id))  # the wizard's call
    queue = RecordingQueue()
    result = _bulk(engine, tenant, queue, "wa_hello")
    assert result.accepted == 2 and len(queue.enqueued_ids) == 2
    with system_session(engine) as session:
        rows = {m.recipient: m for m in session.scalars(select(Message))}
    assert rows["+966501234567"].variables == {"patient_name": "Sara Ali"}
    assert rows["+966501234568"].variables == {"patient_name": "Omar Said"}
    assert rows["+966501234567"].template_id == template_id
