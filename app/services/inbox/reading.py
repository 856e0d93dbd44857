"""Reading the inbox: the threads (filtered, in keyset pages), the unread total, one thread's timeline.

Opening a thread marks it read (its unread count back to 0, ``read_at`` on its replies); that is
not audited. Names and contacts are shown as the actor may see them (``contacts.shown_contact``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Select, and_, false, func, or_, select, update
from sqlalchemy.orm import lazyload

from app.errors import NotFoundError, ValidationError
from app.services import tenants
from app.services.contacts import shown_contact
from app.services.message_content import recipient_variables
from app.services.permissions import Actor, Permission, authorize
from db.enums import Channel, ConversationState, Language, MessageStatus, ReplyIntent
from db.models import Conversation, InboundMessage, Message, Patient, Tenant, User
from db.tenancy import TenantSession
from db.types import StrEnum, utcnow

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
TIMELINE_LIMIT = 200  # the newest replies and messages a thread shows
SNIPPET_LENGTH = 80
UNKNOWN_NUMBER = "Unknown number"


class StateFilter(StrEnum):
    OPEN = "open"
    DONE = "done"
    ALL = "all"

    @property
    def label(self) -> str:
        return {"open": "Open", "done": "Done", "all": "All"}[self.value]


class Waiting(StrEnum):
    """How long the oldest unanswered reply of a thread has waited."""

    UNDER_HOUR = "under_1h"
    HOURS = "1h_24h"
    OVER_DAY = "over_24h"

    @property
    def label(self) -> str:
        return {"under_1h": "Under 1 hour", "1h_24h": "1 to 24 hours", "over_24h": "Over 24 hours"}[self.value]


class Assigned(StrEnum):
    ANYONE = "anyone"  # no filter
    ME = "me"
    NOBODY = "nobody"

    @property
    def label(self) -> str:
        return {"anyone": "Anyone", "me": "Me", "nobody": "Nobody"}[self.value]


class Direction(StrEnum):
    INBOUND = "in"  # the patient wrote
    OUTBOUND = "out"  # the clinic sent


@dataclass(frozen=True)
class ThreadCursor:
    """Where the next page starts: the last thread shown (newest reply first)."""

    last_inbound_at: dt.datetime
    id: uuid.UUID


@dataclass(frozen=True)
class ThreadRow:
    id: uuid.UUID
    patient_id: uuid.UUID | None
    name: str  # the patient's name in their language, or UNKNOWN_NUMBER
    contact: str  # the address, as the actor may see it
    channel: Channel | None  # of the last reply
    snippet: str  # the last reply, on one line, shortened
    intent: ReplyIntent | None  # of the last reply
    unread: int
    waiting_since: dt.datetime | None
    last_inbound_at: dt.datetime | None
    state: ConversationState
    assigned_to_id: uuid.UUID | None
    assigned_to: str  # "" when nobody

    @property
    def cursor(self) -> ThreadCursor | None:
        return ThreadCursor(self.last_inbound_at, self.id) if self.last_inbound_at else None


@dataclass(frozen=True)
class ThreadPage:
    rows: list[ThreadRow]
    next_cursor: ThreadCursor | None  # None on the last page


@dataclass(frozen=True)
class TimelineItem:
    direction: Direction
    id: uuid.UUID  # an InboundMessage's or a Message's
    at: dt.datetime
    channel: Channel
    text: str  # as stored: show it as text
    language: Language | None  # outbound only (a reply's language is its text's)
    intent: ReplyIntent | None  # inbound only
    outcome: str  # inbound: what was done about it ("appointment confirmed"); "" when nothing
    button_text: str  # inbound: the quick-reply button tapped
    was_unread: bool  # inbound: unread until this opening
    status: MessageStatus | None  # outbound only
    by: str  # outbound: the staff member, "Bulk send" or "Automatic"; inbound: ""


@dataclass(frozen=True)
class ThreadView:
    id: uuid.UUID
    patient_id: uuid.UUID | None
    name: str
    contact: str
    state: ConversationState
    assigned_to_id: uuid.UUID | None
    assigned_to: str
    waiting_since: dt.datetime | None
    last_inbound_at: dt.datetime | None
    last_intent: ReplyIntent | None
    items: list[TimelineItem]  # oldest first, newest last; at most TIMELINE_LIMIT
    truncated: bool  # older items exist that are not shown


# -- shared lookups ------------------------------------------------------------------------------


def _conversation(session: TenantSession, conversation_id: uuid.UUID) -> Conversation:
    """The clinic's thread (another clinic's id is "not found", like a made-up one)."""
    found = session.scalar(select(Conversation).where(Conversation.id == conversation_id))
    if found is None:
        raise NotFoundError("That conversation does not exist in your clinic.")
    return found


def _names(session: TenantSession, tenant: Tenant, patient_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Each patient's name in their own language (the rule messages use for ``patient_name``)."""
    ids = set(patient_ids)
    if not ids:
        return {}
    patients = session.scalars(select(Patient).options(lazyload(Patient.tags)).where(
        Patient.id.in_(ids), Patient.deleted_at.is_(None)))
    return {p.id: recipient_variables(tenant, p, Language(p.language), None).get("patient_name") or UNKNOWN_NUMBER
            for p in patients}


def _staff_names(session: TenantSession, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    ids = set(user_ids)
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.display_name, User.username).where(User.id.in_(ids)))
    return {row.id: row.display_name or row.username for row in rows}


def _snippet(reply: InboundMessage | None) -> str:
    if reply is None:
        return ""
    text = " ".join((reply.body or reply.button_text or "").split())
    return text if len(text) <= SNIPPET_LENGTH else text[:SNIPPET_LENGTH - 1] + "…"


def _rows(session: TenantSession, actor: Actor, conversations: Sequence[Conversation]) -> list[ThreadRow]:
    """Thread rows for ``conversations`` with their last reply, names and assignees (four queries)."""
    if not conversations:
        return []
    tenant = tenants.current(session)
    ids = [c.id for c in conversations]
    newest = (select(InboundMessage.conversation_id, func.max(InboundMessage.received_at).label("at"))
              .where(InboundMessage.conversation_id.in_(ids)).group_by(InboundMessage.conversation_id).subquery())
    last: dict[uuid.UUID, InboundMessage] = {}
    for reply in session.scalars(select(InboundMessage).join(newest, and_(
            InboundMessage.conversation_id == newest.c.conversation_id, InboundMessage.received_at == newest.c.at))
            .order_by(InboundMessage.id)):
        last.setdefault(reply.conversation_id, reply)
    names = _names(session, tenant, (c.patient_id for c in conversations if c.patient_id))
    staff = _staff_names(session, (c.assigned_to_id for c in conversations if c.assigned_to_id))
    return [ThreadRow(
        id=c.id, patient_id=c.patient_id, name=names.get(c.patient_id, UNKNOWN_NUMBER) if c.patient_id
        else UNKNOWN_NUMBER, contact=shown_contact(actor, c.address) or "",
        channel=Channel(last[c.id].channel) if c.id in last else None, snippet=_snippet(last.get(c.id)),
        intent=ReplyIntent(c.last_intent) if c.last_intent else None, unread=c.unread_count,
        waiting_since=c.waiting_since, last_inbound_at=c.last_inbound_at, state=ConversationState(c.state),
        assigned_to_id=c.assigned_to_id, assigned_to=staff.get(c.assigned_to_id, "") if c.assigned_to_id else "",
    ) for c in conversations]


# -- the list ------------------------------------------------------------------------------------


def _waiting_clause(waiting: Waiting, now: dt.datetime) -> object:
    hour, day = now - dt.timedelta(hours=1), now - dt.timedelta(hours=24)
    column = Conversation.waiting_since
    if waiting == Waiting.UNDER_HOUR:
        return column > hour
    if waiting == Waiting.HOURS:
        return and_(column >= day, column <= hour)
    return column < day


def _query(actor: Actor, *, state: StateFilter, intents: Sequence[ReplyIntent], waiting: Waiting | None,
           assigned: Assigned, unread_only: bool, now: dt.datetime) -> Select[tuple[Conversation]]:
    query = select(Conversation).where(Conversation.last_inbound_at.is_not(None))
    if state != StateFilter.ALL:
        query = query.where(Conversation.state == ConversationState(state.value))
    if intents:
        query = query.where(Conversation.last_intent.in_([ReplyIntent(i) for i in intents]))
    if waiting is not None:
        query = query.where(_waiting_clause(waiting, now))  # type: ignore[arg-type]
    if assigned == Assigned.ME:
        query = query.where(Conversation.assigned_to_id == actor.user_id if actor.user_id else false())
    elif assigned == Assigned.NOBODY:
        query = query.where(Conversation.assigned_to_id.is_(None))
    if unread_only:
        query = query.where(Conversation.unread_count > 0)
    return query


def _parse(enum: type[StrEnum], value: object, field: str, what: str) -> StrEnum:
    try:
        return enum(value)
    except ValueError:
        raise ValidationError(f"Unknown {what} '{value}'; use one of {', '.join(e.value for e in enum)}.",
                              field=field) from None


def threads(
    session: TenantSession, actor: Actor, *, state: StateFilter | str = StateFilter.OPEN,
    intents: Sequence[ReplyIntent | str] = (), age: Waiting | str | None = None,
    assigned: Assigned | str = Assigned.ANYONE, unread_only: bool = False, limit: int = PAGE_SIZE,
    after: ThreadCursor | None = None, now: dt.datetime | None = None,
) -> ThreadPage:
    """One page of the clinic's threads, the newest reply first; pass ``next_cursor`` for the next.

    ``age`` keeps threads whose oldest unanswered reply has waited that long (answered threads have
    no wait); ``assigned`` is ``me``, ``nobody`` or ``anyone`` (no filter).
    """
    authorize(session, actor, Permission.WORK_INBOX)
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError(f"Show between 1 and {MAX_PAGE_SIZE} threads per page.", field="limit")
    chosen_state = _parse(StateFilter, state, "state", "state")
    chosen_intents = [_parse(ReplyIntent, i, "intents", "intent") for i in intents]
    chosen_age = _parse(Waiting, age, "age", "waiting time") if age is not None else None
    chosen_assigned = _parse(Assigned, assigned, "assigned", "assignment")
    query = _query(actor, state=chosen_state, intents=chosen_intents, waiting=chosen_age,  # type: ignore[arg-type]
                   assigned=chosen_assigned, unread_only=unread_only, now=now or utcnow())  # type: ignore[arg-type]
    if after is not None:
        query = query.where(or_(Conversation.last_inbound_at < after.last_inbound_at, and_(
            Conversation.last_inbound_at == after.last_inbound_at, Conversation.id < after.id)))
    found = list(session.scalars(query.order_by(Conversation.last_inbound_at.desc(), Conversation.id.desc())
                                 .limit(limit + 1)))
    rows = _rows(session, actor, found[:limit])
    return ThreadPage(rows, rows[-1].cursor if len(found) > limit and rows else None)


def unread_total(session: TenantSession, actor: Actor) -> int:
    """How many replies in the clinic's open threads nobody has read yet (for a count beside the menu or
    on the Dashboard)."""
    authorize(session, actor, Permission.WORK_INBOX)
    return int(session.scalar(select(func.coalesce(func.sum(Conversation.unread_count), 0))
                              .where(Conversation.state == ConversationState.OPEN)) or 0)


# -- one thread ----------------------------------------------------------------------------------


def _inbound_item(reply: InboundMessage) -> TimelineItem:
    return TimelineItem(
        direction=Direction.INBOUND, id=reply.id, at=reply.received_at, channel=Channel(reply.channel),
        text=reply.body or reply.button_text or "", language=None,
        intent=ReplyIntent(reply.intent) if reply.intent else None, outcome=reply.outcome or "",
        button_text=reply.button_text or "", was_unread=reply.read_at is None, status=None, by="")


def _outbound_items(session: TenantSession, conversation: Conversation) -> list[TimelineItem]:
    """The clinic's newest messages to the thread's address or to its patient (their other channels too)."""
    found: dict[uuid.UUID, Message] = {}
    wanted = [Message.recipient == conversation.address]
    if conversation.patient_id is not None:
        wanted.append(Message.patient_id == conversation.patient_id)
    for condition in wanted:  # one indexed read each (recipient, patient), then merged
        for message in session.scalars(select(Message).where(condition)
                                       .order_by(Message.created_at.desc(), Message.id.desc())
                                       .limit(TIMELINE_LIMIT + 1)):
            found[message.id] = message
    staff = _staff_names(session, (m.created_by_id for m in found.values() if m.created_by_id))
    return [TimelineItem(
        direction=Direction.OUTBOUND, id=m.id, at=m.created_at, channel=Channel(m.channel), text=m.body,
        language=Language(m.language), intent=None, outcome="", button_text="", was_unread=False,
        status=MessageStatus(m.status),
        by=staff.get(m.created_by_id, "Staff") if m.created_by_id else ("Bulk send" if m.bulk_job_id else "Automatic"),
    ) for m in found.values()]


def _mark_read(session: TenantSession, conversation: Conversation, shown: Sequence[InboundMessage],
               now: dt.datetime) -> None:
    """The thread's replies were seen. The unread count goes to 0 only if no reply came in meanwhile
    (the count is still the one read), so a reply arriving during the opening stays unread."""
    unread = [r.id for r in shown if r.read_at is None]
    if unread:
        session.execute(update(InboundMessage).where(InboundMessage.id.in_(unread), InboundMessage.read_at.is_(None))
                        .values(read_at=now).execution_options(synchronize_session=False))
    if conversation.unread_count:
        session.execute(update(Conversation).where(
            Conversation.id == conversation.id, Conversation.unread_count == conversation.unread_count)
            .values(unread_count=0).execution_options(synchronize_session=False))


def thread(session: TenantSession, actor: Actor, conversation_id: uuid.UUID, *,
           now: dt.datetime | None = None) -> ThreadView:
    """One thread: its replies and the clinic's messages to that address or patient, oldest first, the
    newest ``TIMELINE_LIMIT``; opening it marks it read (not audited)."""
    authorize(session, actor, Permission.WORK_INBOX)
    now = now or utcnow()
    conversation = _conversation(session, conversation_id)
    replies = list(session.scalars(select(InboundMessage).where(InboundMessage.conversation_id == conversation.id)
                                   .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
                                   .limit(TIMELINE_LIMIT + 1)))
    items = sorted([*map(_inbound_item, replies), *_outbound_items(session, conversation)],
                   key=lambda item: (item.at, item.direction != Direction.INBOUND, str(item.id)))
    row = _rows(session, actor, [conversation])[0]
    _mark_read(session, conversation, replies[:TIMELINE_LIMIT], now)
    return ThreadView(
        id=conversation.id, patient_id=conversation.patient_id, name=row.name, contact=row.contact,
        state=row.state, assigned_to_id=row.assigned_to_id, assigned_to=row.assigned_to,
        waiting_since=conversation.waiting_since, last_inbound_at=conversation.last_inbound_at,
        last_intent=row.intent, items=items[-TIMELINE_LIMIT:], truncated=len(items) > TIMELINE_LIMIT)
