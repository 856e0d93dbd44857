"""Staff accounts of one clinic: list, add, change role, (de)activate, reset password, unlock.

A role change, a deactivation and a password reset move the account's ``session_epoch``: every
session of that user ends at its next click (``app.services.auth.check_session``). A reset also
makes the user choose a new password at their next sign-in.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.errors import ConflictError, NotFoundError, ValidationError
from app.services import audit
from app.services.auth import normalise_username
from app.services.passwords import hash_password
from app.services.permissions import Actor, Permission, authorize
from db.enums import Role
from db.models import User
from db.tenancy import TenantSession
from db.types import utcnow

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{2,63}$")
# The roles in the order a form offers them: the least privileged first, so a new account gets no more
# than its holder needs unless an admin chooses more (docs/roles.md).
ROLES_LEAST_PRIVILEGED_FIRST = (Role.ANALYST, Role.FRONT_DESK, Role.ADMIN)


@dataclass(frozen=True)
class StaffMember:
    id: uuid.UUID
    username: str
    display_name: str
    email: str | None
    role: Role
    is_active: bool
    is_locked: bool
    can_view_full_contacts: bool
    last_login_at: dt.datetime | None
    created_at: dt.datetime


def _to_member(user: User, now: dt.datetime) -> StaffMember:
    return StaffMember(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        email=user.email,
        role=Role(user.role),
        is_active=user.is_active,
        is_locked=user.locked_until is not None and user.locked_until > now,
        can_view_full_contacts=user.can_view_full_contacts,
        last_login_at=user.last_login_at,
        created_at=user.created_at,
    )


def parse_role(value: str | Role) -> Role:
    try:
        return Role(str(value).strip().lower().replace("-", "_").replace(" ", "_"))
    except ValueError:
        raise ValidationError(
            f"Unknown role '{value}'. Choose one of: {', '.join(r.value for r in Role)}.", field="role"
        ) from None


def list_staff(session: TenantSession, actor: Actor) -> list[StaffMember]:
    authorize(session, actor, Permission.MANAGE_STAFF)
    now = utcnow()
    users = session.scalars(
        select(User).where(User.deleted_at.is_(None)).order_by(User.role, User.username)
    ).all()
    return [_to_member(u, now) for u in users]


def _get(session: TenantSession, user_id: uuid.UUID) -> User:
    user = session.scalar(select(User).where(User.id == user_id, User.deleted_at.is_(None)))
    if user is None:
        raise NotFoundError("That staff member does not exist in your clinic.")
    return user


def create_user(
    session: TenantSession,
    actor: Actor,
    *,
    username: str,
    password: str,
    role: str | Role,
    display_name: str = "",
    email: str | None = None,
) -> StaffMember:
    """Add a staff member (the command line and the seeder act as ``Actor.system``, an admin)."""
    authorize(session, actor, Permission.MANAGE_STAFF)
    name = normalise_username(username)
    if not USERNAME_PATTERN.match(name):
        raise ValidationError(
            "A username is 3 to 64 characters: letters, digits, dot, dash, underscore or @, "
            "starting with a letter or digit.",
            field="username",
        )
    role = parse_role(role)
    password_hash = hash_password(password)
    email = (email or "").strip().lower() or None
    if email and "@" not in email:
        raise ValidationError("That e-mail address is not valid.", field="email")
    # Usernames are unique across all clinics. This look sees the whole table on SQLite; on PostgreSQL
    # row-level security shows only this clinic, and the unique constraint answers for the others.
    taken = session.connection().execute(
        select(func.count()).select_from(User.__table__).where(func.lower(User.__table__.c.username) == name)
    ).scalar_one()
    if taken:
        raise ConflictError(f"The username '{name}' is already taken.")
    user = User(
        tenant_id=session.tenant_id,
        username=name,
        display_name=display_name.strip() or name,
        email=email,
        role=role,
        password_hash=password_hash,
        password_changed_at=utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(user)
            session.flush()
    except IntegrityError:
        raise ConflictError(f"The username '{name}' is already taken.") from None
    audit.record(
        session, actor, "staff.create", object_type="user", object_id=user.id,
        details={"username": name, "role": role.value},
    )
    return _to_member(user, utcnow())


def _admins_left(session: TenantSession, excluding: uuid.UUID) -> int:
    return session.scalar(
        select(func.count()).select_from(User).where(
            User.role == Role.ADMIN, User.is_active.is_(True), User.deleted_at.is_(None), User.id != excluding
        )
    ) or 0


def _end_sessions(user: User) -> None:
    """Every open session of ``user`` ends at its next click."""
    user.session_epoch = (user.session_epoch or 0) + 1


def change_role(session: TenantSession, actor: Actor, user_id: uuid.UUID, role: str | Role) -> StaffMember:
    """A new role; the user's open sessions end (they sign in again and get the new role's menu)."""
    authorize(session, actor, Permission.MANAGE_STAFF)
    user = _get(session, user_id)
    new_role = parse_role(role)
    if user.role == Role.ADMIN and new_role != Role.ADMIN and _admins_left(session, user.id) == 0:
        raise ValidationError("The clinic needs at least one active admin; make someone else admin first.")
    old = Role(user.role)
    if new_role != old:
        _end_sessions(user)
    user.role = new_role
    if new_role != Role.ANALYST:
        user.can_view_full_contacts = False
    audit.record(session, actor, "staff.change_role", object_type="user", object_id=user.id,
                 details={"username": user.username, "from": old.value, "to": new_role.value})
    return _to_member(user, utcnow())


def set_active(session: TenantSession, actor: Actor, user_id: uuid.UUID, active: bool) -> StaffMember:
    """Deactivate (open sessions end at their next click; nothing is deleted) or reactivate."""
    authorize(session, actor, Permission.MANAGE_STAFF)
    user = _get(session, user_id)
    if not active:
        if user.id == actor.user_id:
            raise ValidationError("You cannot deactivate your own account.")
        if user.role == Role.ADMIN and _admins_left(session, user.id) == 0:
            raise ValidationError("The clinic needs at least one active admin.")
    if user.is_active and not active:
        _end_sessions(user)
    user.is_active = active
    audit.record(session, actor, "staff.activate" if active else "staff.deactivate",
                 object_type="user", object_id=user.id, details={"username": user.username})
    return _to_member(user, utcnow())


def reset_password(session: TenantSession, actor: Actor, user_id: uuid.UUID, new_password: str) -> StaffMember:
    """Set a new password (the admin tells the staff member); also clears a lockout.

    The user's open sessions end at their next click, and their next sign-in asks them to choose
    a password of their own first. An admin resetting their own password chose it themselves:
    their sessions end too, but they are not asked again.
    """
    authorize(session, actor, Permission.MANAGE_STAFF)
    user = _get(session, user_id)
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()
    user.failed_login_count = 0
    user.locked_until = None
    user.must_change_password = user.id != actor.user_id
    _end_sessions(user)
    audit.record(session, actor, "staff.reset_password", object_type="user", object_id=user.id,
                 details={"username": user.username, "must_change_password": user.must_change_password})
    return _to_member(user, utcnow())


def unlock(session: TenantSession, actor: Actor, user_id: uuid.UUID) -> StaffMember:
    authorize(session, actor, Permission.MANAGE_STAFF)
    user = _get(session, user_id)
    user.failed_login_count = 0
    user.locked_until = None
    audit.record(session, actor, "staff.unlock", object_type="user", object_id=user.id,
                 details={"username": user.username})
    return _to_member(user, utcnow())


def set_full_contact_access(session: TenantSession, actor: Actor, user_id: uuid.UUID, allowed: bool) -> StaffMember:
    """Let an analyst see phone numbers and e-mails unmasked (admins and front desk always do)."""
    authorize(session, actor, Permission.MANAGE_STAFF)
    user = _get(session, user_id)
    if user.role != Role.ANALYST:
        raise ValidationError("Only analysts have masked contacts; admins and front desk see them whole.")
    user.can_view_full_contacts = allowed
    audit.record(session, actor, "staff.contact_access", object_type="user", object_id=user.id,
                 details={"username": user.username, "full_access": allowed})
    return _to_member(user, utcnow())
