"""The front desk's inbox (app.services.inbox), on both backends, with two clinics whose patients share
phone numbers and names (clinic B here, and the neighbouring clinic every database test has).

A reply is answered once however often the button is pressed, WhatsApp free text only inside 24 hours of
the patient's last message, and clinic A never sees clinic B's threads or messages, even for one number.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, func, select

from app.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from app.services import inbox, passwords, staff, templates
from app.services.inbox import Assigned, Direction, StateFilter, Waiting, reading
from app.services.inbox.replying import WHATSAPP_CLOSED
from app.services.permissions import Actor
from db.enums import Channel, ConversationState, Language, MessageStatus, ReplyIntent, Role
from db.models import AuditEvent, Conversation, InboundMessage, Message, MessageTemplate
from db.session import system_session, tenant_session
from tests.delivery.conftest import RecordingQueue
from tests.factories import call, make_message, make_patient, make_reply, make_tenant, make_user

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
SARA = "+966501234567"  # Sara Ali in clinic A, clinic B and the neighbouring clinic
OMAR = "+966507654321"
STRANGER = "+966501112233"  # a patient of the neighbouring clinic only: an unknown number to A


@dataclasses.dataclass
class Clinic:
    tenant: uuid.UUID
    admin: Actor
    desk: Actor
    analyst: Actor


@dataclasses.dataclass
class World:
    engine: Engine
    a: Clinic
    b: Clinic
    huda: Actor  # a second front desk of A
    sara: uuid.UUID
    queue: RecordingQueue

    def call(self, fn, actor: Actor, *args, **kwargs):  # type: ignore[no-untyped-def]
        return call(self.engine, actor, fn, *args, queue=self.queue, **kwargs)

    def messages(self, tenant: uuid.UUID) -> list[Message]:
        with system_session(self.engine) as session:
            rows = list(session.scalars(select(Message).where(Message.tenant_id == tenant)
                                        .order_by(Message.created_at)))
            session.expunge_all()
            return rows

    def thread_row(self, thread_id: uuid.UUID) -> Conversation:
        with system_session(self.engine) as session:
            row = session.get(Conversation, thread_id)
            assert row is not None
            session.expunge(row)
            return row

    def audits(self, action: str) -> list[AuditEvent]:
        with system_session(self.engine) as session:
            rows = list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                        .order_by(AuditEvent.created_at)))
            session.expunge_all()
            return rows


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def _clinic(engine: Engine, slug: str, prefix: str) -> Clinic:
    tenant = make_tenant(engine, slug)
    return Clinic(tenant, make_user(engine, tenant, f"{prefix}-admin", Role.ADMIN),
                  make_user(engine, tenant, f"{prefix}-desk", Role.FRONT_DESK),
                  make_user(engine, tenant, f"{prefix}-analyst", Role.ANALYST))


@pytest.fixture
def world(engine: Engine) -> World:
    a, b = _clinic(engine, "clinic-a", "a"), _clinic(engine, "clinic-b", "b")
    sara = make_patient(engine, a.tenant, phone=SARA)
    make_patient(engine, a.tenant, name_en="Omar Said", name_ar="عمر سعيد", phone=OMAR, language=Language.AR)
    make_patient(engine, b.tenant, phone=SARA)  # the same Sara Ali, the same number, in clinic B
    return World(engine, a, b, make_user(engine, a.tenant, "huda", Role.FRONT_DESK), sara, RecordingQueue())


def _template(w: World, clinic: Clinic, code: str, channel: Channel, *, approved: bool = False) -> uuid.UUID:
    template_id = w.call(templates.create_template, clinic.admin, code=code, name=code.title(), channel=channel,
                         body_en="We will call you back, {{ patient_name }}.").id
    if approved:
        with tenant_session(w.engine, clinic.tenant) as session:
            row = session.get(MessageTemplate, template_id)
            assert row is not None
            row.whatsapp_content_sid, row.whatsapp_approval_status = "HX" + "a" * 32, "approved"
    return template_id


# -- two clinics, one number -------------------------------------------------------------------------


def test_clinic_a_never_sees_clinic_bs_threads_nor_its_messages_to_the_same_number(world: World) -> None:
    mine = make_reply(world.engine, world.a.tenant, address=SARA, body="Can I come at 5?",
                      received_at=NOW - dt.timedelta(minutes=10))
    theirs = make_reply(world.engine, world.b.tenant, address=SARA, body="Clinic B's patient wrote this",
                        received_at=NOW - dt.timedelta(minutes=5))
    make_message(world.engine, world.a.tenant, recipient=SARA, body="A: see you tomorrow", patient_id=world.sara,
                 created_at=NOW - dt.timedelta(hours=1))
    make_message(world.engine, world.b.tenant, recipient=SARA, body="B: see you tomorrow",
                 created_at=NOW - dt.timedelta(hours=1))

    page = world.call(inbox.threads, world.a.desk)
    assert [(r.id, r.name, r.contact, r.snippet) for r in page.rows] == [(mine, "Sara Ali", SARA, "Can I come at 5?")]
    view = world.call(inbox.thread, world.a.desk, mine)
    assert [(i.direction, i.text) for i in view.items] == [
        (Direction.OUTBOUND, "A: see you tomorrow"), (Direction.INBOUND, "Can I come at 5?")]
    assert world.call(inbox.unread_total, world.b.desk) == 1  # A's opening read nothing of B's
    assert world.call(inbox.unread_total, world.a.desk) == 0
    for fn, kwargs in ((inbox.thread, {}), (inbox.mark_done, {}), (inbox.reopen, {}), (inbox.reply_options, {}),
                       (inbox.assign, {"user_id": None})):
        with pytest.raises(NotFoundError):
            world.call(fn, world.a.desk, theirs, **kwargs)
    with pytest.raises(NotFoundError):
        world.call(inbox.reply, world.a.desk, theirs, text="Hi", idempotency_key="k1")
    assert world.thread_row(theirs).unread_count == 1
    assert [m.body for m in world.messages(world.b.tenant)] == ["B: see you tomorrow"]


def test_analysts_cannot_work_the_inbox(world: World) -> None:
    thread_id = make_reply(world.engine, world.a.tenant)
    for fn, args in ((inbox.threads, ()), (inbox.unread_total, ()), (inbox.thread, (thread_id,)),
                     (inbox.mark_done, (thread_id,)), (inbox.assignable_staff, ())):
        with pytest.raises(PermissionDenied):
            world.call(fn, world.a.analyst, *args)
    assert world.thread_row(thread_id).unread_count == 1


# -- the list ---------------------------------------------------------------------------------------


def test_rows_show_the_name_in_the_patients_language_or_unknown_number(world: World) -> None:
    make_reply(world.engine, world.a.tenant, address=OMAR, body="نعم", intent="confirm", unread=False,
               outcome="appointment confirmed", received_at=NOW - dt.timedelta(minutes=3))
    make_reply(world.engine, world.a.tenant, address=STRANGER, body="who is this?\n\nplease   call",
               received_at=NOW - dt.timedelta(minutes=2))

    rows = world.call(inbox.threads, world.a.desk).rows
    assert [(r.name, r.snippet, r.intent, r.unread, r.patient_id is None) for r in rows] == [
        (inbox.UNKNOWN_NUMBER, "who is this? please call", ReplyIntent.UNCLEAR, 1, True),
        ("عمر سعيد", "نعم", ReplyIntent.CONFIRM, 0, False),
    ]
    assert rows[1].waiting_since is None  # an acted-on confirm waits for nobody
    assert world.call(inbox.unread_total, world.a.admin) == 1


def test_filters_by_intent_waiting_time_assignee_unread_and_state(world: World) -> None:
    def at(**ago: float) -> dt.datetime:
        return NOW - dt.timedelta(**ago)

    a = world.a.tenant
    fresh = make_reply(world.engine, a, address="+966500000001", intent="unclear", received_at=at(minutes=30))
    hours = make_reply(world.engine, a, address="+966500000002", intent="reschedule", received_at=at(hours=5))
    days = make_reply(world.engine, a, address="+966500000003", intent="unclear", received_at=at(days=2))
    read = make_reply(world.engine, a, address="+966500000004", intent="confirm", unread=False,
                      received_at=at(minutes=1))
    world.call(inbox.assign, world.a.desk, hours, world.a.desk.user_id)
    world.call(inbox.assign, world.a.desk, days, world.huda.user_id)

    def ids(**filters: object) -> set[uuid.UUID]:
        return {r.id for r in world.call(inbox.threads, world.a.desk, now=NOW, **filters).rows}

    assert ids() == {fresh, hours, days, read}
    assert ids(intents=[ReplyIntent.UNCLEAR]) == {fresh, days}
    assert ids(intents=["reschedule", "confirm"]) == {hours, read}
    assert ids(age=Waiting.UNDER_HOUR) == {fresh}
    assert ids(age=Waiting.HOURS) == {hours}
    assert ids(age="over_24h") == {days}
    assert ids(assigned=Assigned.ME) == {hours}
    assert ids(assigned=Assigned.NOBODY) == {fresh, read}
    assert ids(unread_only=True) == {fresh, hours, days}
    world.call(inbox.mark_done, world.a.desk, days)
    assert ids() == {fresh, hours, read}
    assert ids(state=StateFilter.DONE) == {days}
    assert ids(state="all", intents=["unclear"]) == {fresh, days}
    with pytest.raises(ValidationError, match="Unknown waiting time"):
        ids(age="a week")
    with pytest.raises(ValidationError, match="Unknown intent"):
        ids(intents=["'; DROP TABLE conversations; --"])


def test_keyset_pages_cover_every_thread_once_newest_reply_first(world: World) -> None:
    same_time = NOW - dt.timedelta(minutes=5)  # ties on the time are ordered by id, never lost or repeated
    made = [make_reply(world.engine, world.a.tenant, address=f"+9665000000{n:02d}",
                       received_at=same_time if n % 2 else NOW - dt.timedelta(minutes=n)) for n in range(1, 8)]
    make_reply(world.engine, world.b.tenant, address="+966500000001")  # clinic B's thread for one of the numbers

    seen: list[inbox.ThreadRow] = []
    cursor = None
    for _ in range(4):
        page = world.call(inbox.threads, world.a.desk, limit=3, after=cursor)
        seen += page.rows
        cursor = page.next_cursor
        if cursor is None:
            break
    assert cursor is None and len(seen) == 7 and {r.id for r in seen} == set(made)
    keys = [(r.last_inbound_at, r.id) for r in seen]
    assert keys == sorted(keys, reverse=True)
    with pytest.raises(ValidationError):
        world.call(inbox.threads, world.a.desk, limit=0)


# -- one thread -------------------------------------------------------------------------------------


def test_opening_a_thread_marks_it_read_without_an_audit_event(world: World) -> None:
    thread_id = make_reply(world.engine, world.a.tenant, body="first", received_at=NOW - dt.timedelta(minutes=2))
    make_reply(world.engine, world.a.tenant, body="second", received_at=NOW - dt.timedelta(minutes=1))

    view = world.call(inbox.thread, world.a.desk, thread_id)

    assert [(i.text, i.was_unread) for i in view.items] == [("first", True), ("second", True)]
    assert world.thread_row(thread_id).unread_count == 0
    with system_session(world.engine) as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)
                              .where(InboundMessage.read_at.is_(None))) == 0
        assert session.scalar(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action.like("inbox.%"))) == 0
    assert [i.was_unread for i in world.call(inbox.thread, world.a.desk, thread_id).items] == [False, False]


def test_the_timeline_merges_replies_and_the_clinics_messages_and_keeps_the_newest_200(world: World) -> None:
    thread_id = make_reply(world.engine, world.a.tenant, body="reply 0", received_at=NOW - dt.timedelta(hours=300))
    with tenant_session(world.engine, world.a.tenant) as session:
        for n in range(1, 150):
            session.add(InboundMessage(conversation_id=thread_id, patient_id=world.sara, channel=Channel.WHATSAPP,
                                       from_address=SARA, body=f"reply {n}",
                                       received_at=NOW - dt.timedelta(hours=300 - 2 * n)))
        for n in range(100):  # to the address, and by e-mail to the patient
            session.add(Message(recipient=SARA if n % 2 else "sara@example.com", patient_id=world.sara,
                                channel=Channel.SMS if n % 2 else Channel.EMAIL, status=MessageStatus.DELIVERED,
                                body=f"message {n}", created_at=NOW - dt.timedelta(hours=299 - 2 * n),
                                updated_at=NOW))

    view = world.call(inbox.thread, world.a.desk, thread_id)

    assert len(view.items) == inbox.TIMELINE_LIMIT and view.truncated
    assert [i.at for i in view.items] == sorted(i.at for i in view.items)
    assert view.items[-1].text == "reply 149"  # the newest last
    outbound = [i for i in view.items if i.direction == Direction.OUTBOUND]
    assert {i.channel for i in outbound} == {Channel.SMS, Channel.EMAIL}
    assert all(i.status == MessageStatus.DELIVERED and i.by == "Automatic" for i in outbound)
    assert not any("Neighbour clinic" in i.text for i in view.items)


def test_hostile_text_comes_back_exactly_as_stored(world: World) -> None:
    hostile = "**b** [c](http://evil) <img src=x onerror=alert(1)> \u202eevil\u202c ![x](http://e/x.png)"
    thread_id = make_reply(world.engine, world.a.tenant, body=hostile)

    assert world.call(inbox.threads, world.a.desk).rows[0].snippet == hostile
    assert world.call(inbox.thread, world.a.desk, thread_id).items[0].text == hostile


# -- assign, done, reopen -----------------------------------------------------------------------------


def test_assign_to_a_colleague_audited_once_and_other_clinics_staff_refused(world: World) -> None:
    thread_id = make_reply(world.engine, world.a.tenant)

    row = world.call(inbox.assign, world.a.desk, thread_id, world.huda.user_id)
    world.call(inbox.assign, world.a.desk, thread_id, world.huda.user_id)  # a double click changes nothing more

    assert (row.assigned_to_id, row.assigned_to) == (world.huda.user_id, "huda")
    assert [e.details for e in world.audits("inbox.assign")] == [{"from": "", "to": "huda"}]
    for who, why in ((world.b.desk.user_id, "not a staff member of your clinic"),
                     (world.a.analyst.user_id, "does not work the inbox"),
                     (uuid.uuid4(), "not a staff member of your clinic")):
        with pytest.raises(ValidationError, match=why):
            world.call(inbox.assign, world.a.desk, thread_id, who)
    world.call(staff.set_active, world.a.admin, world.a.desk.user_id, False)
    with pytest.raises(ValidationError, match="deactivated"):
        world.call(inbox.assign, world.huda, thread_id, world.a.desk.user_id)
    assert world.thread_row(thread_id).assigned_to_id == world.huda.user_id
    assert [s.name for s in world.call(inbox.assignable_staff, world.huda)] == ["a-admin", "huda"]
    assert world.call(inbox.assign, world.huda, thread_id, None).assigned_to_id is None


def test_done_ends_the_wait_and_reopen_brings_it_back(world: World) -> None:
    received = NOW - dt.timedelta(hours=2)
    thread_id = make_reply(world.engine, world.a.tenant, received_at=received)

    world.call(inbox.mark_done, world.a.desk, thread_id)
    world.call(inbox.mark_done, world.a.desk, thread_id)
    done = world.thread_row(thread_id)
    assert (done.state, done.waiting_since, done.done_by_id) == (ConversationState.DONE, None, world.a.desk.user_id)
    assert [e.details for e in world.audits("inbox.done")] == [{"waiting_since": received.isoformat()}]
    assert world.call(inbox.unread_total, world.a.desk) == 0  # unread replies of done threads are not counted

    row = world.call(inbox.reopen, world.a.desk, thread_id)
    assert row.state == ConversationState.OPEN and world.thread_row(thread_id).done_at is None
    assert len(world.audits("inbox.reopen")) == 1
    assert world.call(inbox.unread_total, world.a.desk) == 1


def test_a_reply_arriving_while_a_thread_is_opened_stays_unread(pg_engine: Engine) -> None:
    """PostgreSQL: the opening's conditional update sees the reply committed meanwhile and keeps it unread."""
    tenant = make_tenant(pg_engine, "clinic-a")
    thread_id = make_reply(pg_engine, tenant, body="first")
    with tenant_session(pg_engine, tenant) as session:
        seen = session.get(Conversation, thread_id)
        assert seen is not None and seen.unread_count == 1
        shown = list(session.scalars(select(InboundMessage).where(InboundMessage.conversation_id == thread_id)))
        make_reply(pg_engine, tenant, body="second")  # committed by the webhook in the meantime
        reading._mark_read(session, seen, shown, NOW)
    with system_session(pg_engine) as session:
        assert session.get(Conversation, thread_id).unread_count == 2
        unread = session.scalars(select(InboundMessage.body).where(InboundMessage.read_at.is_(None))).all()
    assert unread == ["second"]


# -- answering ----------------------------------------------------------------------------------------


def test_whatsapp_free_text_at_23_59_but_only_approved_templates_at_24_01(world: World) -> None:
    received = NOW - dt.timedelta(hours=24)
    thread_id = make_reply(world.engine, world.a.tenant, body="Is the doctor in?", received_at=received)
    approved = _template(world, world.a, "callback", Channel.WHATSAPP, approved=True)
    _template(world, world.a, "unapproved", Channel.WHATSAPP)
    _template(world, world.b, "b_callback", Channel.WHATSAPP, approved=True)
    before, after = NOW - dt.timedelta(minutes=1), NOW + dt.timedelta(minutes=1)

    inside = world.call(inbox.reply_options, world.a.desk, thread_id, now=before)
    assert (inside.channel, inside.free_text, inside.window_ends_at) == (Channel.WHATSAPP, True, NOW)
    assert {t.code for t in inside.templates} == {"callback", "unapproved"}
    outside = world.call(inbox.reply_options, world.a.desk, thread_id, now=after)
    assert (outside.free_text, outside.rule, [t.id for t in outside.templates]) == (False, WHATSAPP_CLOSED, [approved])

    with pytest.raises(ValidationError, match="more than 24 hours ago"):
        world.call(inbox.reply, world.a.desk, thread_id, text="Yes, he is.", idempotency_key="late", now=after)
    with pytest.raises(ValidationError, match="cannot be sent on WhatsApp now"):
        world.call(inbox.reply, world.a.desk, thread_id, template_code="unapproved", idempotency_key="late2", now=after)
    assert world.messages(world.a.tenant) == [] and world.thread_row(thread_id).waiting_since == received

    sent = world.call(inbox.reply, world.a.desk, thread_id, template_code="callback", idempotency_key="t", now=after)
    assert world.messages(world.a.tenant)[0].template_id == approved and not sent.duplicate
    early = world.call(inbox.reply, world.a.desk, thread_id, text="Yes, he is.", idempotency_key="early", now=before)
    assert early.status == MessageStatus.QUEUED


def test_a_double_clicked_reply_sends_once_and_ends_the_wait(world: World) -> None:
    received = NOW - dt.timedelta(minutes=20)
    thread_id = make_reply(world.engine, world.a.tenant, body="Can I bring my son?", received_at=received)

    first = world.call(inbox.reply, world.a.desk, thread_id, text="Of course.", idempotency_key="form-1")
    second = world.call(inbox.reply, world.a.desk, thread_id, text="Of course.", idempotency_key="form-1")

    assert (first.message_id, first.duplicate, second.duplicate) == (second.message_id, False, True)
    messages = world.messages(world.a.tenant)
    assert [(m.recipient, m.patient_id, m.channel, m.body, m.created_by_id) for m in messages] == [
        (SARA, world.sara, Channel.WHATSAPP, "Of course.", world.a.desk.user_id)]
    assert sum(len(ids) for _, ids in world.queue.deliveries) == 1
    assert world.thread_row(thread_id).waiting_since is None
    assert [e.details for e in world.audits("inbox.reply")] == [{
        "message_id": str(first.message_id), "channel": "whatsapp", "template": None,
        "waiting_since": received.isoformat()}]
    assert world.messages(world.b.tenant) == []  # clinic B's Sara Ali, same number, got nothing
    with pytest.raises(ConflictError):  # the same form's key on another thread
        world.call(inbox.reply, world.a.desk, make_reply(world.engine, world.a.tenant, address=OMAR),
                   text="Of course.", idempotency_key="form-1")


def test_an_unknown_number_is_answered_at_its_address(world: World) -> None:
    thread_id = make_reply(world.engine, world.a.tenant, address=STRANGER, channel="sms", body="wrong number?")

    preview = world.call(inbox.reply_preview, world.a.desk, thread_id, text="Reply YES to confirm")
    assert preview.check.reply_warnings and preview.ok  # the reply lint warns; it does not refuse
    lacking = world.call(inbox.reply_preview, world.a.desk, thread_id, text="Hello {{ patient_name }}")
    assert not lacking.ok and "no value for patient_name" in lacking.problems[0]
    with pytest.raises(ValidationError, match="no value for patient_name"):
        world.call(inbox.reply, world.a.desk, thread_id, text="Hello {{ patient_name }}", idempotency_key="x")

    world.call(inbox.reply, world.a.desk, thread_id, text="This is Clinic A. Who is this?", idempotency_key="u")

    assert [(m.recipient, m.patient_id, m.channel) for m in world.messages(world.a.tenant)] == [
        (STRANGER, None, Channel.SMS)]  # the neighbouring clinic's patient with this number is not A's


def test_bad_answers_are_refused_and_write_nothing(world: World) -> None:
    thread_id = make_reply(world.engine, world.a.tenant)
    for kwargs, why in (({}, "Write an answer or choose a template"),
                        ({"text": "hi", "template_code": "x"}, "Write an answer or choose a template"),
                        ({"text": "   "}, "Write the answer"),
                        ({"template_code": "b_callback"}, "cannot be sent"),
                        ({"text": "hi", "idempotency_key": " "}, "idempotency key")):
        with pytest.raises(ValidationError, match=why):
            world.call(inbox.reply, world.a.desk, thread_id, **{"idempotency_key": "k", **kwargs})
    assert world.messages(world.a.tenant) == [] and world.audits("inbox.reply") == []
    assert world.thread_row(thread_id).waiting_since is not None
