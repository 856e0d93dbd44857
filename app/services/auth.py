"""Staff sign-in: password check, lockout, idle timeout, single sign-on mapping. All audited."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from app.errors import AuthenticationError
from app.services import audit
from app.services.passwords import _hasher, needs_rehash, verify_password
from app.services.permissions import Actor
from db.enums import Role
from db.models import Tenant, User
from db.session import system_session, tenant_session
from db.tenancy import TenantSession
from db.types import utcnow

WRONG_CREDENTIALS = "Wrong username or password."


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


def _actor(user: User, tenant: Tenant) -> Actor:
    return Actor(
        user_id=user.id,
        tenant_id=user.tenant_id,
        username=user.username,
        display_name=user.display_name or user.username,
        role=Role(user.role),
        tenant_name=tenant.name,
        can_view_full_contacts=user.can_view_full_contacts,
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
    locked for ``lockout_minutes``; while locked even the right password is refused.
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

    if user.locked_until is not None and user.locked_until > now:
        minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
        return fail(
            "locked",
            f"This account is locked after too many failed sign-ins. Try again in {minutes} "
            "minutes, or ask your clinic admin to unlock it.",
        )
    if not verify_password(user.password_hash, password):
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
    user.last_login_at = now
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    actor = _actor(user, tenant)
    audit.record(session, actor, "auth.login", object_type="user", object_id=user.id,
                 tenant_id=user.tenant_id)
    return actor, None


def record_logout(engine: Engine, actor: Actor, *, reason: str = "logout") -> None:
    """Audit the end of a session: ``logout`` (the user clicked) or ``timeout`` (idle)."""
    action = "auth.logout" if reason == "logout" else "auth.timeout"
    with tenant_session(engine, actor.tenant_id) as session:
        audit.record(session, actor, action, object_type="user", object_id=actor.user_id)


def is_idle_expired(last_activity: dt.datetime, *, policy: LoginPolicy | None = None,
                    now: dt.datetime | None = None) -> bool:
    policy = policy or LoginPolicy.from_settings()
    return (now or utcnow()) - last_activity > dt.timedelta(minutes=policy.idle_minutes)


def refresh_actor(engine: Engine, actor: Actor) -> Actor | None:
    """Re-read the signed-in user; None when they were deactivated or deleted meanwhile."""
    with tenant_session(engine, actor.tenant_id) as session:
        row = session.execute(
            select(User, Tenant).join(Tenant, Tenant.id == User.tenant_id).where(User.id == actor.user_id)
        ).first()
        if row is None:
            return None
        user, tenant = row
        if not user.is_active or user.deleted_at is not None or not tenant.is_active:
            return None
        return _actor(user, tenant)


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
        actor = _actor(user, tenant)
        audit.record(session, actor, "auth.login", object_type="user", object_id=user.id,
                     details={"method": "sso"})
        return actor
