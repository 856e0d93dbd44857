"""Staff sign-in: password check, lockout, idle timeout, single sign-on mapping. All audited.

Sessions follow the account: an actor carries the account's ``session_epoch`` from sign-in, and
``check_session`` (every click) ends a session whose account was reset, deactivated, deleted or
given another role meanwhile. After an admin's password reset a correct sign-in gives no actor
but a ``PendingPasswordChange``; only ``complete_password_change`` turns it into one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from app.errors import AuthenticationError, ValidationError
from app.services import audit, passwords
from app.services.passwords import hash_password, needs_rehash, verify_password
from app.services.permissions import Actor
from db.enums import Role
from db.models import Tenant, User
from db.session import system_session, tenant_session
from db.tenancy import TenantSession
from db.types import utcnow

WRONG_CREDENTIALS = "Wrong username or password."
ACCOUNT_CHANGED = "Your account was changed by an administrator; sign in again."
CHOOSE_NEW_PASSWORD = "Your password was reset by an administrator. Choose a new password to continue."  # noqa: S105
SAME_PASSWORD = "Choose a new password, not the one your administrator gave you."  # noqa: S105


@dataclass(frozen=True)
class PendingPasswordChange:
    """A correct sign-in whose password an admin reset: the only thing it allows is choosing a new
    password (``complete_password_change``). It is not an ``Actor``, so no other service accepts it."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    username: str
    session_epoch: int
    issued_at: dt.datetime


class PasswordChangeRequired(AuthenticationError):
    """The password was right, but an admin reset it: a new one must be chosen before signing in."""

    def __init__(self, pending: PendingPasswordChange) -> None:
        super().__init__(CHOOSE_NEW_PASSWORD)
        self.pending = pending


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int = 5
    lockout_minutes: int = 15
    idle_minutes: int = 30

    @classmethod
    def from_settings(cls) -> LoginPolicy:
        from app.config import get_settings

        s = get_settings()
        return cls(s.login_max_failures, s.login_lockout_minutes, s.session_idle_minutes)


def normalise_username(username: str) -> str:
    return username.strip().lower()


def actor_of(user: User, tenant: Tenant) -> Actor:
    """The signed-in staff member an account row stands for (plain data, no live row)."""
    return Actor(
        user_id=user.id,
        tenant_id=user.tenant_id,
        username=user.username,
        display_name=user.display_name or user.username,
        role=Role(user.role),
        tenant_name=tenant.name,
        can_view_full_contacts=user.can_view_full_contacts,
        session_epoch=user.session_epoch or 0,
    )


def authenticate(
    engine: Engine,
    username: str,
    password: str,
    *,
    policy: LoginPolicy | None = None,
    now: dt.datetime | None = None,
) -> Actor:
    """Check a username and password; return the signed-in actor or raise AuthenticationError.

    Every outcome is audited. After ``max_failures`` wrong passwords in a row the account is
    locked for ``lockout_minutes``; while locked even the right password is refused, with the
    wrong-password message and after the same argon2 check, so neither the words nor the time tell
    a locked account from a wrong password or an unknown user. A right password that an admin
    reset raises ``PasswordChangeRequired`` (carrying a ``PendingPasswordChange``), not an actor.
    """
    policy = policy or LoginPolicy.from_settings()
    now = now or utcnow()
    name = normalise_username(username)
    if not name or not password:
        raise AuthenticationError("Enter your username and password.")
    error: AuthenticationError | None = None
    actor: Actor | None = None
    # The session commits before any error is raised, so failures and lockouts are recorded.
    with system_session(engine) as session:
        row = session.execute(
            select(User, Tenant)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(func.lower(User.username) == name, User.deleted_at.is_(None))
        ).first()
        if row is None:
            verify_password(None, password)  # same cost as a real check
            audit.record(
                session, None, "auth.login_failed",
                details={"username": name[:64], "reason": "unknown user"}, actor_name=name[:64],
            )
            error = AuthenticationError(WRONG_CREDENTIALS)
        else:
            actor, error = _check_user(session, *row, password, policy, now)
    if error is not None:
        raise error
    assert actor is not None
    return actor


def _check_user(
    session: TenantSession, user: User, tenant: Tenant, password: str, policy: LoginPolicy,
    now: dt.datetime,
) -> tuple[Actor | None, AuthenticationError | None]:
    def fail(reason: str, message: str) -> tuple[None, AuthenticationError]:
        audit.record(
            session, None, "auth.login_failed", object_type="user", object_id=user.id,
            details={"username": user.username, "reason": reason},
            tenant_id=user.tenant_id, actor_name=user.username,
        )
        return None, AuthenticationError(message)

    # Always the full argon2 check first: a locked account costs the same time as any other.
    password_ok = verify_password(user.password_hash, password)
    if user.locked_until is not None and user.locked_until > now:
        # Not counted (the lock is not extended) and not told apart from a wrong password.
        return fail("locked", WRONG_CREDENTIALS)
    if not password_ok:
        user.failed_login_count = (user.failed_login_count or 0) + 1
        if user.failed_login_count >= policy.max_failures:
            user.locked_until = now + dt.timedelta(minutes=policy.lockout_minutes)
            user.failed_login_count = 0
            audit.record(
                session, None, "auth.locked", object_type="user", object_id=user.id,
                details={"username": user.username, "minutes": policy.lockout_minutes},
                tenant_id=user.tenant_id, actor_name=user.username,
            )
        return fail("wrong password", WRONG_CREDENTIALS)
    if not user.is_active or not tenant.is_active:
        return fail("deactivated", "This account is deactivated. Ask your clinic admin.")
    user.failed_login_count = 0
    user.locked_until = None
    if user.must_change_password:
        audit.record(
            session, None, "auth.password_change_required", object_type="user", object_id=user.id,
            details={"username": user.username}, tenant_id=user.tenant_id, actor_name=user.username,
        )
        pending = PendingPasswordChange(
            user_id=user.id, tenant_id=user.tenant_id, username=user.username,
            session_epoch=user.session_epoch or 0, issued_at=now,
        )
        return None, PasswordChangeRequired(pending)
    user.last_login_at = now
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = passwords._hasher.hash(password)
    actor = actor_of(user, tenant)
    audit.record(session, actor, "auth.login", object_type="user", object_id=user.id,
                 tenant_id=user.tenant_id)
    return actor, None


def complete_password_change(
    engine: Engine,
    pending: PendingPasswordChange,
    new_password: str,
    *,
    policy: LoginPolicy | None = None,
    now: dt.datetime | None = None,
) -> Actor:
    """Set the password chosen after an admin's reset and sign in: the actor, or an error.

    Refused when the pending sign-in is older than the idle limit, or the account changed since
    (another reset, deactivation, deletion, role change: its epoch moved); the new password must
    meet the policy and differ from the reset one. Moves the epoch, so no older session survives.
    """
    policy = policy or LoginPolicy.from_settings()
    now = now or utcnow()
    if is_idle_expired(pending.issued_at, policy=policy, now=now):
        raise AuthenticationError("That took too long. Sign in again with the password your administrator gave you.")
    passwords.check_password_policy(new_password)
    with tenant_session(engine, pending.tenant_id) as session:
        row = session.execute(
            select(User, Tenant).join(Tenant, Tenant.id == User.tenant_id).where(User.id == pending.user_id)
        ).first()
        if row is None:
            raise AuthenticationError(ACCOUNT_CHANGED)
        user, tenant = row
        if revocation(user, tenant, pending.session_epoch, None) or not user.must_change_password:
            raise AuthenticationError(ACCOUNT_CHANGED)
        if verify_password(user.password_hash, new_password):
            raise ValidationError(SAME_PASSWORD, field="password")
        user.password_hash = hash_password(new_password)
        user.password_changed_at = now
        user.must_change_password = False
        user.session_epoch = (user.session_epoch or 0) + 1
        user.last_login_at = now
        actor = actor_of(user, tenant)
        audit.record(session, actor, "auth.password_changed", object_type="user", object_id=user.id,
                     details={"username": user.username, "after": "reset"})
        audit.record(session, actor, "auth.login", object_type="user", object_id=user.id)
        return actor


def record_logout(engine: Engine, actor: Actor, *, reason: str = "logout") -> None:
    """Audit the end of a session: ``logout`` (the user clicked) or ``timeout`` (idle). A session
    ended by an admin's change is audited by ``check_session`` (``auth.session_revoked``)."""
    with tenant_session(engine, actor.tenant_id) as session:
        audit_logout(session, actor, reason=reason)


def audit_logout(session: TenantSession, actor: Actor, *, reason: str = "logout",
                 details: dict | None = None) -> None:
    """The audit event of a session's end: ``auth.logout`` or ``auth.timeout``."""
    action = "auth.logout" if reason == "logout" else "auth.timeout"
    audit.record(session, actor, action, object_type="user", object_id=actor.user_id, details=details)


def audit_revoked(session: TenantSession, actor: Actor, reason: str) -> None:
    """The audit event of a session an admin's change ended (``reason`` from ``revocation``)."""
    audit.record(session, actor, "auth.session_revoked", object_type="user", object_id=actor.user_id,
                 details={"username": actor.username, "reason": reason})


def is_idle_expired(last_activity: dt.datetime, *, policy: LoginPolicy | None = None,
                    now: dt.datetime | None = None) -> bool:
    policy = policy or LoginPolicy.from_settings()
    return (now or utcnow()) - last_activity > dt.timedelta(minutes=policy.idle_minutes)


def revocation(user: User, tenant: Tenant, epoch: int, role: Role | None) -> str | None:
    """Why a session that started at ``epoch`` (with ``role``) must end now, or None."""
    if user.deleted_at is not None:
        return "deleted"
    if not user.is_active or not tenant.is_active:
        return "deactivated"
    if (user.session_epoch or 0) != epoch:
        return "epoch"
    if role is not None and Role(user.role) != role:
        return "role"
    return None


def check_session(engine: Engine, actor: Actor) -> Actor | None:
    """Re-read the signed-in user (one query by primary key, in their clinic): the fresh actor, or
    None when the session must end because the account was reset, deactivated, deleted or given
    another role since sign-in. That end is audited (``auth.session_revoked``)."""
    with tenant_session(engine, actor.tenant_id) as session:
        row = session.execute(
            select(User, Tenant).join(Tenant, Tenant.id == User.tenant_id).where(User.id == actor.user_id)
        ).first()
        if row is None:
            audit.record(session, None, "auth.session_revoked", object_type="user", object_id=actor.user_id,
                         details={"username": actor.username, "reason": "deleted"}, actor_name=actor.username)
            return None
        user, tenant = row
        reason = revocation(user, tenant, actor.session_epoch, actor.role)
        if reason is not None:
            audit_revoked(session, actor, reason)
            return None
        return actor_of(user, tenant)


# --- single sign-on (st.login / OIDC), off unless configured -----------------------------------


@dataclass(frozen=True)
class SSOConfig:
    """How an identity provider's claims map to a clinic and a role (``[sso]`` in secrets.toml)."""

    tenant_slug: str
    role_claim: str = "roles"
    role_map: dict[str, str] | None = None
    default_role: str | None = None


def actor_from_sso(engine: Engine, claims: dict, config: SSOConfig) -> Actor:
    """Sign in a user the identity provider vouched for, matched by e-mail within the clinic.

    The role comes from ``role_claim`` through ``role_map``; a user with no mapped role, or
    whose clinic account is deactivated, is refused. A first sign-in creates the staff record.
    """
    email = str(claims.get("email") or "").strip().lower()
    if not email:
        raise AuthenticationError("The identity provider did not send an e-mail address.")
    raw = claims.get(config.role_claim)
    values = raw if isinstance(raw, list) else [raw] if raw else []
    mapping = config.role_map or {}
    roles = [mapping.get(str(v), str(v)) for v in values]
    role_name = next((r for r in roles if r in {r.value for r in Role}), config.default_role)
    if role_name is None:
        raise AuthenticationError("Your identity provider account has no role in this system.")
    with system_session(engine) as session:
        tenant = session.scalar(select(Tenant).where(Tenant.slug == config.tenant_slug))
        if tenant is None:
            raise AuthenticationError("Single sign-on points at a clinic that does not exist.")
        user = session.scalar(
            select(User).where(
                User.tenant_id == tenant.id, func.lower(User.email) == email, User.deleted_at.is_(None)
            )
        )
        if user is None:
            user = User(
                id=uuid.uuid4(), tenant_id=tenant.id, username=email[:64], email=email,
                display_name=str(claims.get("name") or email)[:200], role=Role(role_name),
                password_hash=None,
            )
            session.add(user)
            session.flush()
        elif not user.is_active:
            raise AuthenticationError("This account is deactivated. Ask your clinic admin.")
        user.role = Role(role_name)
        user.last_login_at = utcnow()
        actor = actor_of(user, tenant)
        audit.record(session, actor, "auth.login", object_type="user", object_id=user.id,
                     details={"method": "sso"})
        return actor
