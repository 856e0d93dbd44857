"""Message templates: safe to write, versioned, previewable, test-sendable, per clinic and per role."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from app.config import Settings
from app.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from app.services import templates
from app.services.message_content import STANDARD_VARIABLES
from db.enums import Channel, MessageStatus, Role
from db.models import AuditEvent, Message, MessageTemplate, MessageTemplateVersion
from db.session import tenant_session
from tests.delivery.conftest import RecordingQueue, delivery_settings
from tests.factories import call, make_tenant, make_user

REMINDER = "Hi {patient_name}, your appointment is on {{ appointment_date }} at {{ appointment_time }}."
DOC = Path(__file__).resolve().parents[2] / "docs" / "template-variables.md"


@pytest.fixture
def clinic(engine: Engine):
    tenant = make_tenant(engine)
    return engine, tenant, make_user(engine, tenant, "boss", Role.ADMIN)


def _create(engine: Engine, tenant: uuid.UUID, actor, **overrides) -> templates.TemplateDetail:
    args = {"code": "reminder", "name": "Appointment reminder", "channel": "SMS", "body_en": REMINDER,
            "body_ar": "مرحبا {patient_name}، موعدك يوم {{ appointment_date }}"} | overrides
    with tenant_session(engine, tenant) as session:
        return templates.create_template(session, actor, **args)


def _audit(engine: Engine, tenant: uuid.UUID) -> list[tuple[str, dict]]:
    with tenant_session(engine, tenant) as session:
        return [(e.action, e.details) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.created_at))
                if e.action.startswith("template.")]


def _template_count(engine: Engine, tenant: uuid.UUID) -> tuple[int, int]:
    with tenant_session(engine, tenant) as session:
        return (len(list(session.scalars(select(MessageTemplate)))),
                len(list(session.scalars(select(MessageTemplateVersion)))))


# -- create, read, list -------------------------------------------------------------------------


def test_admin_creates_a_bilingual_template_with_version_one(clinic) -> None:
    engine, tenant, admin = clinic
    detail = _create(engine, tenant, admin, code="  Reminder-24h ")
    assert detail.code == "reminder-24h" and detail.channel == Channel.SMS and detail.is_active
    assert detail.current_version == 1 and [v.version for v in detail.versions] == [1]
    assert detail.versions[0].created_by == "boss"
    assert detail.body_en == REMINDER and detail.body_ar.startswith("مرحبا")
    assert detail.variables == ("appointment_date", "appointment_time", "patient_name")
    assert ("template.create", {"code": "reminder-24h", "channel": "sms", "version": 1}) in _audit(engine, tenant)
    with tenant_session(engine, tenant) as session:
        again = templates.get_template(session, admin, detail.id)
    assert again == detail


def test_list_filters_by_channel_active_and_search(clinic) -> None:
    engine, tenant, admin = clinic
    sms = _create(engine, tenant, admin, code="reminder", name="Reminder")
    _create(engine, tenant, admin, code="welcome_mail", name="Welcome e-mail", channel="email",
            subject_en="Welcome to {{ clinic_name }}", body_en="Dear {patient_name}, welcome.", body_ar="")
    with tenant_session(engine, tenant) as session:
        templates.set_active(session, admin, sms.id, False)
        assert [t.code for t in templates.list_templates(session, admin)] == ["reminder", "welcome_mail"]
        assert [t.code for t in templates.list_templates(session, admin, channel="Email")] == ["welcome_mail"]
        assert [t.code for t in templates.list_templates(session, admin, active=False)] == ["reminder"]
        assert [t.code for t in templates.list_templates(session, admin, search="WELCOME")] == ["welcome_mail"]
        assert [t.code for t in templates.list_templates(session, admin, search="remind")] == ["reminder"]
        assert templates.list_templates(session, admin, search="%") == []
    assert ("template.deactivate", {"code": "reminder"}) in _audit(engine, tenant)


# -- bad input: each a clear message on the right field, nothing saved -------------------------


@pytest.mark.parametrize(
    "overrides,error,field,match",
    [
        ({"code": "x"}, ValidationError, "code", "2 to 64"),
        ({"code": "bad code!"}, ValidationError, "code", "lower-case letters"),
        ({"name": "  "}, ValidationError, "name", "name"),
        ({"channel": "fax"}, ValidationError, "channel", "unknown channel"),
        ({"body_en": "   "}, ValidationError, "body_en", "The English text is empty"),
        ({"channel": "email", "subject_en": ""}, ValidationError, "subject_en", "English subject"),
        ({"body_en": "{{ ''.__class__.__mro__ }}"}, ValidationError, "body_en", "not allowed"),
        ({"body_en": "{{ cycler.__init__.__globals__ }}"}, ValidationError, "body_en", "not allowed"),
        ({"body_en": "Hi {{ patient_name }"}, ValidationError, "body_en", "syntax error"),
        ({"body_en": "Hi {{ patient_name"}, ValidationError, "body_en", "syntax error"),
        ({"body_en": "Hi {patient_name"}, ValidationError, "body_en", "without its partner"),
        ({"body_en": "Hi patient_name}"}, ValidationError, "body_en", "without its partner"),
        ({"body_en": "{{ patient_name|shout }}"}, ValidationError, "body_en", "No filter named 'shout'"),
        ({"body_en": "{{ 'x' * 10**9 }}"}, ValidationError, "body_en", "too long|too large"),
        ({"body_en": "{{ 10 ** (10 ** 10) }}"}, ValidationError, "body_en", "too large"),
        ({"body_en": "{{ patient_name|center(10**9) }}"}, ValidationError, "body_en", "too large"),
        ({"body_en": "a" * 1601}, ValidationError, "body_en", "SMS allows at most 1,600"),
        ({"body_en": "{% for i in range(200) %}{{ patient_name }}{% endfor %}"}, ValidationError, "body_en",
         "SMS allows at most 1,600"),
        ({"channel": "whatsapp", "body_ar": "ب" * 1601}, ValidationError, "body_ar", "WhatsApp allows at most"),
        ({"body_en": "Hi {patient_nme}"}, ValidationError, "body_en",
         "Unknown variable 'patient_nme'. Did you mean 'patient_name'?"),
        ({"body_ar": "مرحبا {{ doctor_nam }}"}, ValidationError, "body_ar", "Did you mean 'doctor_name'"),
        ({"body_en": "Use {{ promo_code }}"}, ValidationError, "body_en", "Unknown variable 'promo_code'"),
        ({"subject_en": "Hello"}, ValidationError, "subject_en", "Only e-mail has a subject"),
    ],
)
def test_bad_input_is_refused_on_its_field_and_nothing_is_saved(clinic, overrides, error, field, match) -> None:
    engine, tenant, admin = clinic
    with pytest.raises(error, match=match) as caught:
        _create(engine, tenant, admin, **overrides)
    assert caught.value.field == field
    assert _template_count(engine, tenant) == (0, 0)
    assert _audit(engine, tenant) == []


def test_a_custom_variable_is_accepted_when_the_send_supplies_it(clinic) -> None:
    engine, tenant, admin = clinic
    detail = _create(engine, tenant, admin, body_en="Use {{ promo_code }}, {patient_name}", body_ar="",
                     custom_variables=["promo_code"])
    assert detail.variables == ("patient_name", "promo_code")
    with tenant_session(engine, tenant) as session:  # an edit keeps accepting what the template already uses
        edited = templates.update_template(session, admin, detail.id, name="Promo")
    assert edited.current_version == 2


def test_duplicate_code_is_a_conflict_but_a_deleted_code_can_be_reused(clinic) -> None:
    engine, tenant, admin = clinic
    first = _create(engine, tenant, admin)
    with pytest.raises(ConflictError, match="already has a template with the code 'reminder'"):
        _create(engine, tenant, admin, name="Another")
    assert _template_count(engine, tenant) == (1, 1)
    with tenant_session(engine, tenant) as session:
        templates.delete_template(session, admin, first.id)
    with tenant_session(engine, tenant) as session:
        with pytest.raises(NotFoundError):
            templates.get_template(session, admin, first.id)
        assert templates.list_templates(session, admin) == []
    second = _create(engine, tenant, admin, name="Reminder again")
    assert second.id != first.id and second.code == "reminder"
    assert ("template.delete", {"code": "reminder"}) in _audit(engine, tenant)


def test_html_and_script_are_stored_and_rendered_as_plain_text(clinic) -> None:
    engine, tenant, admin = clinic
    body = '<script>alert("x")</script> <b>{{ patient_name }}</b> & co'
    detail = _create(engine, tenant, admin, body_en=body, body_ar="")
    assert detail.body_en == body
    shown = templates.check_body("sms", detail.body_en)
    assert shown.preview == '<script>alert("x")</script> <b>Sara Al-Qahtani</b> & co'
    assert shown.error is None


def test_an_email_template_has_a_long_limit_and_rendered_subjects(clinic) -> None:
    engine, tenant, admin = clinic
    detail = _create(engine, tenant, admin, code="letter", channel="email", subject_en="Your visit to {clinic_name}",
                     subject_ar="زيارتك إلى {clinic_name}", body_en="x" * 5000, body_ar="")
    subject, body = templates.check_body("email", detail.subject_en), templates.check_body("email", detail.body_en)
    assert subject.preview == "Your visit to Al Noor Clinic" and len(body.preview) == 5000 and not body.over_limit
    with pytest.raises(ValidationError, match=r"too long|longer than 20,000") as caught:
        _create(engine, tenant, admin, code="huge", channel="email", subject_en="s", body_en="{{ 'x' * 20001 }}")
    assert caught.value.field == "body_en"


# -- editing, versions, diff, restore, duplicate -----------------------------------------------


def test_every_save_is_a_new_version_and_old_versions_stay_as_they_were(clinic) -> None:
    engine, tenant, admin = clinic
    detail = _create(engine, tenant, admin)
    with tenant_session(engine, tenant) as session:
        v2 = templates.update_template(session, admin, detail.id, body_en="Reminder: {{ appointment_date }}",
                                       note="shorter")
        v3 = templates.update_template(session, admin, detail.id, name="Reminder (short)")
        first = templates.get_version(session, admin, detail.id, 1)
    assert v2.current_version == 2 and v2.body_en == "Reminder: {{ appointment_date }}"
    assert v3.current_version == 3 and v3.name == "Reminder (short)" and v3.body_en == v2.body_en
    assert [(v.version, v.note) for v in v3.versions] == [(1, "created"), (2, "shorter"), (3, "edited")]
    assert first.body_en == REMINDER and first.created_by == "boss"
    actions = _audit(engine, tenant)
    assert ("template.update", {"code": "reminder", "version": 2, "changed": ["body_en"]}) in actions
    assert ("template.update", {"code": "reminder", "version": 3, "changed": ["name"]}) in actions


def test_a_refused_edit_changes_nothing(clinic) -> None:
    engine, tenant, admin = clinic
    detail = _create(engine, tenant, admin)
    with pytest.raises(ValidationError, match="Did you mean 'appointment_date'") as caught:
        with tenant_session(engine, tenant) as session:
            templates.update_template(session, admin, detail.id, name="New name",
                                      body_ar="موعدك {{ apointment_date }}")
    assert caught.value.field == "body_ar"
    with tenant_session(engine, tenant) as session:
        assert templates.get_template(session, admin, detail.id) == detail


def test_versions_can_be_compared_and_restored_as_a_new_version(clinic) -> None:
    engine, tenant, admin = clinic
    detail = _create(engine, tenant, admin)
    with tenant_session(engine, tenant) as session:
        templates.update_template(session, admin, detail.id, body_en="Reminder: {{ appointment_date }}")
        diff = templates.diff_versions(session, admin, detail.id, 1, 2)
        same = templates.diff_versions(session, admin, detail.id, 2, 2)
        restored = templates.restore_version(session, admin, detail.id, 1)
        after = templates.diff_versions(session, admin, detail.id, 1, 3)
    assert "--- English text, version 1" in diff and "+++ English text, version 2" in diff
    assert f"-{REMINDER}" in diff and "+Reminder: {{ appointment_date }}" in diff
    assert "Arabic" not in diff  # only fields that changed
    assert same == "No differences between version 2 and version 2."
    assert restored.current_version == 3 and restored.body_en == REMINDER
    assert restored.versions[-1].note == "restored from version 1"
    assert after.startswith("No differences")
    assert ("template.restore", {"code": "reminder", "from_version": 1, "version": 3}) in _audit(engine, tenant)
    with tenant_session(engine, tenant) as session, pytest.raises(NotFoundError, match="no version 9"):
        templates.restore_version(session, admin, detail.id, 9)


def test_duplicate_copies_the_current_content_under_a_new_code(clinic) -> None:
    engine, tenant, admin = clinic
    detail = _create(engine, tenant, admin)
    with tenant_session(engine, tenant) as session:
        templates.update_template(session, admin, detail.id, body_en="v2 {{ patient_name }}")
        copy = templates.duplicate_template(session, admin, detail.id, new_code="reminder_copy", new_name="Copy")
        with pytest.raises(ConflictError):
            templates.duplicate_template(session, admin, detail.id, new_code="reminder", new_name="Clash")
    assert copy.id != detail.id and copy.current_version == 1 and copy.body_en == "v2 {{ patient_name }}"
    assert copy.body_ar == detail.body_ar and copy.versions[0].note == "copied from reminder version 2"
    assert ("template.duplicate", {"code": "reminder_copy", "from_code": "reminder", "from_version": 2}) in (
        _audit(engine, tenant))


# -- tenants and roles ----------------------------------------------------------------------------


def test_another_clinic_cannot_see_or_change_a_template(clinic) -> None:
    engine, tenant, admin = clinic
    detail = _create(engine, tenant, admin)
    other = make_tenant(engine, "clinic-b")
    other_admin = make_user(engine, other, "other-boss", Role.ADMIN)
    with tenant_session(engine, other) as session:
        assert templates.list_templates(session, other_admin) == []
        for call in (
            lambda: templates.get_template(session, other_admin, detail.id),
            lambda: templates.update_template(session, other_admin, detail.id, name="Mine"),
            lambda: templates.delete_template(session, other_admin, detail.id),
            lambda: templates.restore_version(session, other_admin, detail.id, 1),
            lambda: templates.template_usage(session, other_admin, detail.id),
        ):
            with pytest.raises(NotFoundError):
                call()
    # the same code is free in the other clinic
    assert _create(engine, other, other_admin).code == "reminder"
    with tenant_session(engine, tenant) as session:
        assert templates.get_template(session, admin, detail.id).name == "Appointment reminder"


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ANALYST])
def test_front_desk_and_analyst_read_but_cannot_change(clinic, role) -> None:
    engine, tenant, admin = clinic
    detail = _create(engine, tenant, admin)
    reader = make_user(engine, tenant, f"reader-{role.value}".replace("_", "-"), role)
    with tenant_session(engine, tenant) as session:
        assert [t.code for t in templates.list_templates(session, reader)] == ["reminder"]
        assert templates.get_template(session, reader, detail.id).code == "reminder"
        assert templates.diff_versions(session, reader, detail.id, 1, 1).startswith("No differences")
        for change in (
            lambda: templates.create_template(session, reader, code="mine", name="Mine", channel="sms", body_en="x"),
            lambda: templates.update_template(session, reader, detail.id, name="Mine"),
            lambda: templates.duplicate_template(session, reader, detail.id, new_code="c2", new_name="C"),
            lambda: templates.set_active(session, reader, detail.id, False),
            lambda: templates.delete_template(session, reader, detail.id),
            lambda: templates.restore_version(session, reader, detail.id, 1),
        ):
            with pytest.raises(PermissionDenied):
                change()
    assert _template_count(engine, tenant) == (1, 1)


# -- the live editor: segments, cost, variables, preview -----------------------------------------


PRICES = Settings(sms_price_per_segment=0.05, whatsapp_price_per_message=0.01, email_price_per_message=0.0)


@pytest.mark.parametrize(
    "body,language,encoding,segments,per_segment",
    [
        ("a" * 160, "en", "GSM-7", 1, 160),
        ("a" * 161, "en", "GSM-7", 2, 153),
        ("a" * 306, "en", "GSM-7", 2, 153),
        ("a" * 307, "en", "GSM-7", 3, 153),
        ("[" * 80, "en", "GSM-7", 1, 160),  # extension characters count double
        ("[" * 81, "en", "GSM-7", 2, 153),
        ("ب" * 70, "ar", "UCS-2", 1, 70),
        ("ب" * 71, "ar", "UCS-2", 2, 67),
        ("ب" * 134, "ar", "UCS-2", 2, 67),
        ("ب" * 135, "ar", "UCS-2", 3, 67),
    ],
)
def test_segment_counter_for_known_strings(body, language, encoding, segments, per_segment) -> None:
    check = templates.check_body("sms", body, language=language, settings=PRICES)
    assert (check.encoding, check.segments, check.per_segment) == (encoding, segments, per_segment)
    assert check.characters == len(body) and not check.over_limit and check.ok
    assert check.estimated_cost == pytest.approx(0.05 * segments)
    assert check.currency == "USD"


def test_a_curly_quote_forcing_ucs2_gets_a_hint() -> None:
    plain = templates.check_body("sms", "Don't be late, {patient_name}", language="en", settings=PRICES)
    curly = templates.check_body("sms", "Don\u2019t be late, {patient_name}", language="en", settings=PRICES)
    assert plain.encoding == "GSM-7" and plain.stray_characters_hint is None
    assert curly.encoding == "UCS-2" and curly.non_gsm_chars == ("\u2019",)
    assert "U+2019" in (curly.stray_characters_hint or "")


def test_the_counter_measures_the_rendered_preview_with_sample_data() -> None:
    check = templates.check_body("sms", "Hi {patient_name}", language="en", settings=PRICES)
    assert check.preview == "Hi Sara Al-Qahtani" and check.characters == len("Hi Sara Al-Qahtani")
    arabic = templates.check_body("sms", "مرحبا {{ patient_name }}", language="ar", settings=PRICES)
    assert arabic.preview == "مرحبا سارة القحطاني" and arabic.encoding == "UCS-2"
    edited = templates.check_body("sms", "Hi {patient_name}", language="en", settings=PRICES,
                                  sample_values_override={"patient_name": "Omar"})
    assert edited.preview == "Hi Omar"


def test_the_counter_flags_over_limit_unknown_variables_and_errors_without_raising() -> None:
    long = templates.check_body("whatsapp", "a" * 1601, language="en", settings=PRICES)
    assert long.over_limit and not long.ok and long.estimated_cost == pytest.approx(0.01)
    typo = templates.check_body("sms", "Hi {patient_nme}", language="en", settings=PRICES)
    assert [(u.name, u.suggestion) for u in typo.unknown_variables] == [("patient_nme", "patient_name")]
    assert typo.unknown_variables[0].message == "Unknown variable 'patient_nme'. Did you mean 'patient_name'?"
    custom = templates.check_body("sms", "Code {{ promo }}", language="en", custom_variables=["promo"],
                                  settings=PRICES)
    assert custom.ok and custom.variables == ("promo",)
    broken = templates.check_body("sms", "{{ ''.__class__ }}", language="en", settings=PRICES)
    assert broken.error and "not allowed" in broken.error and broken.preview == ""
    mail = templates.check_body("email", "x" * 3000, language="en", settings=PRICES)
    assert mail.ok and mail.limit == 20_000 and mail.estimated_cost == 0.0


# -- test send and usage ---------------------------------------------------------------------------


def _runtime(engine: Engine):
    from app.delivery.ratelimit import LocalRateLimiter
    from app.delivery.runtime import Runtime
    from app.providers.registry import build_providers

    settings = delivery_settings(engine)
    queue = RecordingQueue()
    return Runtime(engine, settings, build_providers(settings), LocalRateLimiter(), queue), queue


def test_test_send_goes_through_the_pipeline_marked_as_a_test(clinic) -> None:
    engine, tenant, admin = clinic
    detail = _create(engine, tenant, admin)
    with tenant_session(engine, tenant) as session:
        templates.update_template(session, admin, detail.id, body_en="Test {patient_name} {{ appointment_date }}")
    runtime, queue = _runtime(engine)
    result = call(engine, admin, templates.test_send, detail.id, recipient="0501234567",
                  sample_values_override={"patient_name": "Omar"}, queue=queue)
    assert result.body.startswith("Test Omar 2026-12-01") and result.recipient == "+966501234567"
    assert queue.enqueued_ids == [str(result.message_id)]
    queue.drain(runtime)
    with tenant_session(engine, tenant) as session:
        row = session.get(Message, result.message_id)
        version = session.get(MessageTemplateVersion, row.template_version_id)
        assert row.is_test and row.template_id == detail.id and version.version == 2
        assert MessageStatus(row.status) in (MessageStatus.SENT, MessageStatus.DELIVERED)
        usage = templates.template_usage(session, admin, detail.id)
    assert usage.messages_sent == 0 and usage.last_used_at is None


def test_test_send_is_for_template_managers(clinic) -> None:
    engine, tenant, admin = clinic
    detail = _create(engine, tenant, admin)
    front = make_user(engine, tenant, "frontdesk", Role.FRONT_DESK)
    with pytest.raises(PermissionDenied):
        call(engine, front, templates.test_send, detail.id, recipient="0501234567", queue=RecordingQueue())


def _message(detail_id, version_id, status: MessageStatus, *, is_test: bool = False) -> Message:
    return Message(template_id=detail_id, template_version_id=version_id, channel=Channel.SMS,
                   recipient="+966501234567", body="x", status=status, is_test=is_test)


def test_usage_statistics_count_real_messages_per_version_and_leave_out_tests(clinic) -> None:
    engine, tenant, admin = clinic
    detail = _create(engine, tenant, admin)
    other = _create(engine, tenant, admin, code="unused")
    with tenant_session(engine, tenant) as session:
        templates.update_template(session, admin, detail.id, body_en="v2 {patient_name}")
        v1, v2 = (session.scalar(select(MessageTemplateVersion.id).where(
            MessageTemplateVersion.template_id == detail.id, MessageTemplateVersion.version == n)) for n in (1, 2))
        session.add_all([
            _message(detail.id, v1, MessageStatus.DELIVERED),
            _message(detail.id, v1, MessageStatus.READ),
            _message(detail.id, v1, MessageStatus.FAILED),
            _message(detail.id, v2, MessageStatus.UNDELIVERED),
            _message(detail.id, v2, MessageStatus.DELIVERED),
            _message(detail.id, v2, MessageStatus.SENT),  # not final yet: sent, not in the rate
            _message(detail.id, v2, MessageStatus.CANCELLED),  # never sent
            _message(detail.id, v2, MessageStatus.DELIVERED, is_test=True),
            _message(detail.id, v2, MessageStatus.FAILED, is_test=True),
        ])
    with tenant_session(engine, tenant) as session:
        usage = templates.template_usage(session, admin, detail.id)
        listed = {t.code: t for t in templates.list_templates(session, admin)}
        unused = templates.template_usage(session, admin, other.id)
    assert (usage.messages_sent, usage.delivered, usage.failed) == (6, 3, 2)
    assert usage.delivery_rate == pytest.approx(3 / 5)
    assert [(v.version, v.messages) for v in usage.per_version] == [(1, 3), (2, 3)]
    assert usage.last_used_at is not None
    assert listed["reminder"].messages_sent == 6 and listed["reminder"].delivery_rate == pytest.approx(0.6)
    assert listed["reminder"].last_used_at == usage.last_used_at
    assert listed["unused"].messages_sent == 0 and listed["unused"].delivery_rate is None
    assert unused.per_version == () and unused.delivery_rate is None


# -- the variable reference ---------------------------------------------------------------------------


def test_every_standard_variable_is_documented_with_its_meaning_and_example() -> None:
    doc = DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", doc, flags=re.MULTILINE))
    assert documented == set(STANDARD_VARIABLES)
    assert templates.variable_reference_markdown() in doc
    for name, (meaning, _example) in STANDARD_VARIABLES.items():
        assert meaning in doc, name
