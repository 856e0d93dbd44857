"""The message explorer: every filter, the search box, keyset pages, counts, detail, retry."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select

from app.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from app.services import explorer, messaging, passwords
from app.services.explorer import Cursor, MessageFilter
from app.services.permissions import Actor
from db.enums import Channel, MessageStatus, Outcome, Role
from db.models import Message, MessageLog, MessageTemplate, MessageTemplateVersion
from db.session import tenant_session
from db.tenancy import TenantScopeError
from tests.delivery.conftest import RecordingQueue
from tests.factories import call, make_message, make_patient, make_tenant, make_user

NOW = dt.datetime.now(dt.UTC)
ALL = MessageFilter()


@dataclasses.dataclass
class World:
    engine: Engine
    tenant: uuid.UUID
    admin: Actor
    front: Actor
    analyst: Actor
    sara: uuid.UUID


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 parameters: these tests are about messages, not about hashing cost."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def world(engine: Engine) -> World:
    tenant = make_tenant(engine)
    return World(
        engine, tenant,
        make_user(engine, tenant, "amira", Role.ADMIN),
        make_user(engine, tenant, "fatima", Role.FRONT_DESK),
        make_user(engine, tenant, "omar", Role.ANALYST),
        make_patient(engine, tenant),
    )


def page(w: World, flt: MessageFilter = ALL, actor: Actor | None = None,
         **kwargs: object) -> explorer.MessagePage:
    with tenant_session(w.engine, w.tenant) as session:
        return explorer.list_messages(session, actor or w.admin, flt, **kwargs)  # type: ignore[arg-type]


def ids(w: World, flt: MessageFilter = ALL, **kwargs: object) -> list[uuid.UUID]:
    return [r.id for r in page(w, flt, **kwargs).rows]


def ago(**delta: float) -> dt.datetime:
    return NOW - dt.timedelta(**delta)


# --- filters ------------------------------------------------------------------------------------


def test_newest_first_and_only_the_period(world: World) -> None:
    old = make_message(world.engine, world.tenant, created_at=ago(days=10))
    mid = make_message(world.engine, world.tenant, created_at=ago(days=2))
    new = make_message(world.engine, world.tenant, created_at=ago(hours=1))

    assert ids(world) == [new, mid]
    assert ids(world, MessageFilter(period="30d")) == [new, mid, old]
    assert ids(world, MessageFilter(period="30d", oldest_first=True)) == [old, mid, new]


def test_custom_dates_are_the_clinics_local_days(world: World) -> None:
    # Asia/Riyadh is UTC+3: 22:30 UTC on the 1st is already the 2nd locally.
    late = make_message(world.engine, world.tenant, created_at=dt.datetime(2026, 3, 1, 22, 30, tzinfo=dt.UTC))
    make_message(world.engine, world.tenant, created_at=dt.datetime(2026, 3, 1, 20, 30, tzinfo=dt.UTC))
    make_message(world.engine, world.tenant, created_at=dt.datetime(2026, 3, 2, 21, 30, tzinfo=dt.UTC))

    flt = MessageFilter(period="custom", date_from=dt.date(2026, 3, 2), date_to=dt.date(2026, 3, 2))
    assert ids(world, flt) == [late]


def test_status_channel_template_bulk_error_and_test_filters(world: World) -> None:
    e = world.engine
    with tenant_session(e, world.tenant) as session:
        template = MessageTemplate(code="remind", name="Reminder", channel="sms")
        session.add(template)
        session.flush()
        template_id = template.id
    failed = make_message(e, world.tenant, status="failed", error_code="21211", created_at=ago(minutes=5))
    undelivered = make_message(e, world.tenant, status="undelivered", error_code="30003", created_at=ago(minutes=4))
    email = make_message(e, world.tenant, channel="email", recipient="sara@example.com", created_at=ago(minutes=3))
    templated = make_message(e, world.tenant, template_id=template_id, created_at=ago(minutes=2))
    test = make_message(e, world.tenant, is_test=True, created_at=ago(minutes=1))

    assert ids(world) == [templated, email, undelivered, failed]  # test messages hidden by default
    assert ids(world, MessageFilter(include_test=True))[0] == test
    assert ids(world, MessageFilter(statuses=(MessageStatus.FAILED,))) == [failed]
    assert ids(world, MessageFilter(statuses=(MessageStatus.FAILED, MessageStatus.UNDELIVERED))) == [
        undelivered, failed]
    assert ids(world, MessageFilter(channels=("email",))) == [email]
    assert ids(world, MessageFilter(template_id=template_id)) == [templated]
    assert ids(world, MessageFilter(error_code="30003")) == [undelivered]
    assert ids(world, MessageFilter(statuses=(MessageStatus.FAILED,), channels=("email",))) == []
    assert ids(world, MessageFilter(bulk_job_id=uuid.uuid4())) == []


def test_patient_filter(world: World) -> None:
    mine = make_message(world.engine, world.tenant, patient_id=world.sara)
    make_message(world.engine, world.tenant, recipient="+966507654321")

    assert ids(world, MessageFilter(patient_id=world.sara)) == [mine]


# --- search -------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["0501234567", "+966 50 123 4567", "966501234567", "+966501234567",
                                   "050-123-4567", "٠٥٠١٢٣٤٥٦٧"])
def test_a_phone_number_is_found_however_it_is_typed(world: World, typed: str) -> None:
    hers = make_message(world.engine, world.tenant, recipient="+966501234567")
    make_message(world.engine, world.tenant, recipient="+966507654321")

    assert ids(world, MessageFilter(search=typed)) == [hers]


def test_search_by_email_and_by_english_or_arabic_name(world: World) -> None:
    e = world.engine
    ali = make_patient(e, world.tenant, name_en="Ali Hassan", name_ar="علي حسن", phone="+966507654321",
                       email="ali@example.com")
    to_sara = make_message(e, world.tenant, patient_id=world.sara, created_at=ago(minutes=3))
    to_ali = make_message(e, world.tenant, patient_id=ali, recipient="+966507654321", created_at=ago(minutes=2))
    email = make_message(e, world.tenant, channel="email", recipient="ali@example.com", patient_id=ali,
                         created_at=ago(minutes=1))

    assert ids(world, MessageFilter(search="ALI@example.com")) == [email]
    assert ids(world, MessageFilter(search="hassan")) == [email, to_ali]
    assert ids(world, MessageFilter(search="سارة")) == [to_sara]
    assert ids(world, MessageFilter(search="a")) == [email, to_ali, to_sara]  # several patients merged by time
    assert ids(world, MessageFilter(search="nobody-by-this-name")) == []
    assert ids(world, MessageFilter(search="100%_")) == []  # LIKE wildcards are literal


# --- pages --------------------------------------------------------------------------------------


def walk(w: World, flt: MessageFilter, size: int) -> list[uuid.UUID]:
    seen: list[uuid.UUID] = []
    cursor: Cursor | None = None
    while True:
        result = page(w, flt, after=cursor, limit=size)
        seen.extend(r.id for r in result.rows)
        if result.next_cursor is None:
            return seen
        cursor = Cursor.decode(result.next_cursor.encode())  # through the URL form


@pytest.mark.parametrize("flt", [MessageFilter(), MessageFilter(oldest_first=True),
                                 MessageFilter(statuses=(MessageStatus.FAILED, MessageStatus.DELIVERED))])
def test_keyset_pages_cover_every_row_once_even_with_equal_times(world: World, flt: MessageFilter) -> None:
    same = ago(minutes=30)
    made = [make_message(world.engine, world.tenant, created_at=same if i % 3 == 0 else ago(minutes=i),
                         status="failed" if i % 2 else "delivered") for i in range(23)]

    seen = walk(world, flt, size=4)

    assert len(seen) == len(set(seen)) == 23
    assert set(seen) == set(made)
    order = (Message.created_at, Message.id) if flt.oldest_first else (Message.created_at.desc(), Message.id.desc())
    with tenant_session(world.engine, world.tenant) as session:
        assert seen == list(session.scalars(select(Message.id).order_by(*order)))  # in page order throughout


def test_new_messages_arriving_while_paging_skip_and_repeat_nothing(world: World) -> None:
    before = {make_message(world.engine, world.tenant, created_at=ago(minutes=i + 1)) for i in range(10)}
    first = page(world, limit=4)
    arrived = make_message(world.engine, world.tenant)  # newer than everything: lands before page one
    rest: list[uuid.UUID] = []
    cursor = first.next_cursor
    while cursor is not None:
        result = page(world, after=cursor, limit=4)
        rest.extend(r.id for r in result.rows)
        cursor = result.next_cursor

    shown = [r.id for r in first.rows] + rest
    assert sorted(map(str, shown)) == sorted(map(str, before))
    assert arrived not in shown
    assert ids(world, limit=1) == [arrived]  # page one shows it on reload


def test_a_bad_cursor_or_page_size_is_refused(world: World) -> None:
    with pytest.raises(ValidationError):
        Cursor.decode("nonsense")
    with pytest.raises(ValidationError):
        page(world, limit=0)


def test_counts_are_exact_up_to_the_cap_then_counted_from_the_rollups(world: World) -> None:
    from app.analytics import rollups

    for i in range(5):
        make_message(world.engine, world.tenant, created_at=ago(minutes=i + 1))
    rollups.rebuild(world.engine)
    with tenant_session(world.engine, world.tenant) as session:
        exact = explorer.count_messages(session, world.admin, MessageFilter())
        over = explorer.count_messages(session, world.admin, MessageFilter(), cap=3)
        nothing = explorer.count_messages(session, world.admin, MessageFilter(search="no such name"))

    assert exact == explorer.Total(5, True) and exact.label == "5 messages"
    # never "about 10,001 (estimate)": SQLite counts, PostgreSQL reads the rollups as the Dashboard does
    assert over == explorer.Total(5, True)
    assert nothing == explorer.Total(0, True)


def test_a_total_past_the_cap_is_counted_as_the_dashboard_counts_it(world: World) -> None:
    from app.analytics import rollups

    neighbour = make_tenant(world.engine, "clinic-b")  # the same numbers, more messages: never counted here
    for i in range(4):
        make_message(world.engine, world.tenant, created_at=ago(days=1, minutes=i))
        make_message(world.engine, world.tenant, created_at=ago(days=2), status="failed", error_code="30003")
        make_message(world.engine, neighbour, created_at=ago(days=1, minutes=i))
        make_message(world.engine, neighbour, created_at=ago(days=1, minutes=i))
    make_message(world.engine, world.tenant, created_at=ago(days=1), is_test=True)
    rollups.rebuild(world.engine)
    make_message(world.engine, world.tenant, created_at=ago(seconds=5))  # this hour: from the rows themselves
    sms = MessageFilter(channels=(Channel.SMS,))
    with tenant_session(world.engine, world.tenant) as session:
        every = explorer.count_messages(session, world.admin, sms, cap=2, now=NOW)
        failed = explorer.count_messages(session, world.admin, MessageFilter(outcomes=(Outcome.FAILED,)), cap=2,
                                         now=NOW)
        searched = explorer.count_messages(session, world.admin, MessageFilter(search="0501234567"), cap=2, now=NOW)

    assert every == explorer.Total(9, True) and every.label == "9 messages"  # the test message is not counted
    assert failed == explorer.Total(4, True)
    if world.engine.dialect.name == "postgresql":  # a search is not in the rollups: still the planner's estimate
        assert not searched.exact and "estimate" in searched.label


def test_the_last_n_days_start_where_the_dashboards_do() -> None:
    from app.analytics.store import Period

    now = dt.datetime(2026, 12, 6, 4, 41, 7, tzinfo=dt.UTC)
    for days in (7, 30, 90):
        start, end = explorer.time_window(MessageFilter(period=f"{days}d"), "Asia/Riyadh", now)
        assert (start, end) == (Period.last_days(days, now=now).start, None)


# --- URL round trip -----------------------------------------------------------------------------


def test_the_filter_round_trips_through_url_parameters() -> None:
    flt = MessageFilter(period="custom", date_from=dt.date(2026, 1, 1), date_to=dt.date(2026, 1, 31),
                        statuses=(MessageStatus.FAILED, MessageStatus.UNKNOWN), channels=("sms",),
                        template_id=uuid.uuid4(), bulk_job_id=uuid.uuid4(), patient_id=uuid.uuid4(),
                        error_code="21211", include_test=True, search="+966 50 123 4567", oldest_first=True)
    params = flt.to_params()

    assert all(isinstance(v, str) for v in params.values())
    again = MessageFilter.from_params(params)
    assert again.to_params() == params
    assert MessageFilter.from_params({}) == MessageFilter()
    assert MessageFilter().to_params() == {}


@pytest.mark.parametrize("params, field", [({"period": "forever"}, "period"), ({"status": "lost"}, "status"),
                                           ({"from": "31/01/2026", "period": "custom"}, "from"),
                                           ({"template": "123"}, "template")])
def test_bad_url_parameters_are_refused_by_name(params: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        MessageFilter.from_params(params)
    assert err.value.field == field


def test_custom_dates_in_the_wrong_order_are_refused() -> None:
    with pytest.raises(ValidationError, match="after the end"):
        MessageFilter(period="custom", date_from=dt.date(2026, 2, 1), date_to=dt.date(2026, 1, 1))


# --- tenants and roles --------------------------------------------------------------------------


def test_another_clinic_sees_none_of_it(world: World) -> None:
    theirs = make_message(world.engine, world.tenant)
    other = make_tenant(world.engine, "clinic-b")
    boss = make_user(world.engine, other, "bilal", Role.ADMIN)
    with tenant_session(world.engine, other) as session:
        assert explorer.list_messages(session, boss, MessageFilter()).rows == []
        with pytest.raises(NotFoundError):
            explorer.message_detail(session, boss, theirs)
    with tenant_session(world.engine, world.tenant) as session, pytest.raises(TenantScopeError):
        explorer.list_messages(session, boss, MessageFilter())


def test_analysts_see_contacts_masked_unless_granted(world: World) -> None:
    make_message(world.engine, world.tenant, created_at=ago(minutes=2))
    make_message(world.engine, world.tenant, channel="email", recipient="sara@example.com")

    assert [r.recipient for r in page(world, actor=world.analyst).rows] == ["s***@example.com", "+9665******67"]
    assert [r.recipient for r in page(world, actor=world.front).rows] == ["sara@example.com", "+966501234567"]
    granted = dataclasses.replace(world.analyst, can_view_full_contacts=True)
    assert page(world, actor=granted).rows[1].recipient == "+966501234567"


def test_analysts_cannot_retry(world: World) -> None:
    with tenant_session(world.engine, world.tenant) as session, pytest.raises(PermissionDenied):
        explorer.retryable_ids(session, world.analyst, MessageFilter())


# --- detail -------------------------------------------------------------------------------------


def test_detail_has_the_timeline_template_sender_and_a_plain_explanation(world: World) -> None:
    e = world.engine
    with tenant_session(e, world.tenant) as session:
        template = MessageTemplate(code="remind", name="Reminder", channel="sms", current_version=2)
        session.add(template)
        session.flush()
        version = MessageTemplateVersion(template_id=template.id, version=2, body_en="Hi")
        session.add(version)
        session.flush()
        template_id, version_id = template.id, version.id
    message_id = make_message(e, world.tenant, status="failed", error_code="21211", template_id=template_id,
                              template_version_id=version_id, created_by_id=world.front.user_id,
                              patient_id=world.sara, provider="twilio", provider_message_id="SM123",
                              body="موعدك غدا", language="ar", segments=1)
    with tenant_session(e, world.tenant) as session:
        session.add_all([
            MessageLog(message_id=message_id, event="claimed", from_status="queued", to_status="sending",
                       created_at=ago(seconds=30)),
            MessageLog(message_id=message_id, event="failed", from_status="sending", to_status="failed",
                       error_code="21211", provider="twilio", created_at=ago(seconds=10)),
        ])
    with tenant_session(e, world.tenant) as session:
        detail = explorer.message_detail(session, world.front, message_id)

    assert detail.template_code == "remind" and detail.template_version == 2
    assert detail.sent_by == "fatima"
    assert detail.patient_name == "Sara Ali"
    assert detail.provider_message_id == "SM123"
    assert [t.event for t in detail.timeline] == ["claimed", "failed"]
    assert detail.error is not None and "not a valid mobile number" in detail.error.title
    assert "patient record" in detail.error.action
    assert detail.can_retry and not detail.can_cancel


def test_detail_of_an_unknown_id_is_not_found(world: World) -> None:
    with tenant_session(world.engine, world.tenant) as session, pytest.raises(NotFoundError):
        explorer.message_detail(session, world.admin, uuid.uuid4())


# --- retry --------------------------------------------------------------------------------------


def service(w: World) -> tuple[Callable[..., Any], RecordingQueue]:
    """``fn(session, actor, ...)`` as the actor, with the jobs on a recording queue."""
    queue = RecordingQueue()
    return (lambda fn, actor, *args, **kwargs: call(w.engine, actor, fn, *args, queue=queue, **kwargs)), queue


def retries_of(w: World) -> list[Message]:
    with tenant_session(w.engine, w.tenant) as session:
        return list(session.scalars(select(Message).where(Message.retry_of_id.is_not(None))))


def test_retry_one_makes_a_linked_new_message_and_twice_sends_once(world: World) -> None:
    svc, queue = service(world)
    failed = make_message(world.engine, world.tenant, status="failed")

    first = svc(messaging.retry, world.front, [failed])
    again = svc(messaging.retry, world.front, [failed])

    assert first[0].message_id == again[0].message_id and again[0].note == "already retried"
    assert [m.retry_of_id for m in retries_of(world)] == [failed]
    assert sum(len(batch) for _, batch in queue.deliveries) == 1
    with tenant_session(world.engine, world.tenant) as session:
        assert explorer.message_detail(session, world.front, failed).retried_as_id == first[0].message_id
        assert not explorer.message_detail(session, world.front, failed).can_retry


def test_retry_all_failed_in_the_filter_needs_the_count_confirmed(world: World) -> None:
    svc, _ = service(world)
    for status in ("failed", "undelivered", "unknown", "delivered", "queued"):
        make_message(world.engine, world.tenant, status=status)
    already = make_message(world.engine, world.tenant, status="failed")
    svc(messaging.retry, world.front, [already])
    flt = MessageFilter()
    with tenant_session(world.engine, world.tenant) as session:
        candidates = explorer.retryable_ids(session, world.front, flt)
    assert len(candidates) == 3  # failed, undelivered, unknown; not the one retried before

    with pytest.raises(ConflictError, match="changed"):
        svc(explorer.retry_filtered, world.front, flt, expected=2)
    assert len(retries_of(world)) == 1  # nothing sent on a stale count

    results = svc(explorer.retry_filtered, world.front, flt, expected=3)
    assert len(results) == 3 and len(retries_of(world)) == 4
    with pytest.raises(ValidationError, match="nothing to retry"):
        svc(explorer.retry_filtered, world.front, flt, expected=0)


def test_retry_in_a_filter_of_delivered_messages_finds_nothing(world: World) -> None:
    make_message(world.engine, world.tenant, status="failed")
    with tenant_session(world.engine, world.tenant) as session:
        assert explorer.retryable_ids(session, world.front,
                                      MessageFilter(statuses=(MessageStatus.DELIVERED,))) == []


def test_cancel_a_queued_message(world: World) -> None:
    svc, _ = service(world)
    queued = make_message(world.engine, world.tenant, status="queued")

    assert svc(messaging.cancel, world.front, message_ids=[queued]) == 1
    assert page(world).rows[0].status == MessageStatus.CANCELLED
