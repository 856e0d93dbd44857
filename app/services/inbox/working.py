"""Working a thread: assign it to a staff member of the clinic, mark it done, reopen it (each audited).

A change that changes nothing (assigning to the current assignee, marking a done thread done) writes
nothing, so a double click leaves one audit event.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from app.errors import ValidationError
from app.services import audit
from app.services.inbox.reading import ThreadRow, _conversation, _rows, _staff_names
from app.services.permissions import ROLE_PERMISSIONS, Actor, Permission, authorize
from db.enums import ConversationState, Role
from db.models import User
from db.tenancy import TenantSession
from db.types import utcnow

INBOX_ROLES = tuple(role for role in Role if Permission.WORK_INBOX in ROLE_PERMISSIONS[role])


@dataclass(frozen=True)
class StaffChoice:
    id: uuid.UUID
    name: str
    role: Role


def assignable_staff(session: TenantSession, actor: Actor) -> list[StaffChoice]:
    """The clinic's active staff whose role works the inbox: whom a thread may be assigned to."""
    authorize(session, actor, Permission.WORK_INBOX)
    users = session.scalars(select(User).where(
        User.deleted_at.is_(None), User.is_active.is_(True), User.role.in_(INBOX_ROLES)).order_by(User.username))
    return [StaffChoice(u.id, u.display_name or u.username, Role(u.role)) for u in users]


def _assignee(session: TenantSession, user_id: uuid.UUID) -> User:
    user = session.scalar(select(User).where(User.id == user_id, User.deleted_at.is_(None)))
    if user is None:
        raise ValidationError("That person is not a staff member of your clinic.", field="user_id")
    if not user.is_active:
        raise ValidationError(f"{user.display_name or user.username}'s account is deactivated.", field="user_id")
    if Role(user.role) not in INBOX_ROLES:
        raise ValidationError(f"{user.display_name or user.username}'s role ({Role(user.role).label}) does not "
                              "work the inbox.", field="user_id")
    return user


def assign(session: TenantSession, actor: Actor, conversation_id: uuid.UUID,
           user_id: uuid.UUID | None) -> ThreadRow:
    """Give the thread to an active staff member of this clinic who works the inbox (None: to nobody)."""
    authorize(session, actor, Permission.WORK_INBOX)
    conversation = _conversation(session, conversation_id)
    user = _assignee(session, user_id) if user_id is not None else None
    before = conversation.assigned_to_id
    if before != (user.id if user else None):
        names = _staff_names(session, [before] if before else [])
        conversation.assigned_to_id = user.id if user else None
        audit.record(session, actor, "inbox.assign", object_type="conversation", object_id=conversation.id,
                     details={"from": names.get(before, "") if before else "",
                              "to": (user.display_name or user.username) if user else ""})
        session.flush()
    return _rows(session, actor, [conversation])[0]


def mark_done(session: TenantSession, actor: Actor, conversation_id: uuid.UUID) -> ThreadRow:
    """Nothing more to do for now: the thread leaves the open list and its wait ends (a new reply reopens it)."""
    authorize(session, actor, Permission.WORK_INBOX)
    conversation = _conversation(session, conversation_id)
    if conversation.state != ConversationState.DONE:
        waited = conversation.waiting_since
        conversation.state = ConversationState.DONE
        conversation.done_at = utcnow()
        conversation.done_by_id = actor.user_id
        conversation.waiting_since = None
        audit.record(session, actor, "inbox.done", object_type="conversation", object_id=conversation.id,
                     details={"waiting_since": waited.isoformat() if waited else None})
        session.flush()
    return _rows(session, actor, [conversation])[0]


def reopen(session: TenantSession, actor: Actor, conversation_id: uuid.UUID) -> ThreadRow:
    """Put a done thread back in the open list."""
    authorize(session, actor, Permission.WORK_INBOX)
    conversation = _conversation(session, conversation_id)
    if conversation.state != ConversationState.OPEN:
        conversation.state = ConversationState.OPEN
        conversation.done_at = None
        conversation.done_by_id = None
        audit.record(session, actor, "inbox.reopen", object_type="conversation", object_id=conversation.id)
        session.flush()
    return _rows(session, actor, [conversation])[0]
