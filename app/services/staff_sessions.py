"""Server-side sign-in sessions: one row per sign-in, carried by an HttpOnly cookie.

A sign-in (``start``) writes the session and a one-time token; the browser redeems that token once,
within ``HANDOFF_SECONDS``, at the app's own HTTP route (``redeem``), which answers with the cookie
holding the session's secret. Only SHA-256 hashes of the token and the secret are stored. A page
view with the cookie finds its session (``find``, the one cross-clinic read: the session row by its
hash) and checks it (``check``) in its clinic, as each click of a signed-in tab does.

A session ends at its idle expiry (``SESSION_IDLE_MINUTES`` after the last activity anyone saw, in
any tab), at its absolute expiry (``SESSION_ABSOLUTE_HOURS`` after sign-in), on sign-out (``end``,
in every tab and browser that carries it), and when an admin resets the password, deactivates the
account or changes its role (``auth.revocation``: the account's epoch or role moved on).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import Engine, delete, select, update

from app.services import auth
from app.services.permissions import Actor
from db.models import StaffSession, Tenant, User
from db.session import system_session, tenant_session
from db.types import utcnow

COOKIE_NAME = "clinic_session"
HANDOFF_SECONDS = 60
# last_seen_at is written at most this often: a click is not a database write
TOUCH_EVERY = dt.timedelta(minutes=1)
# a session row is deleted at its user's next sign-in once it has been over this long
KEEP_ENDED = dt.timedelta(days=30)

TIMED_OUT = "timeout"
EXPIRED = "expired"
SIGNED_OUT = "logout"
ACCOUNT_CHANGED = "account"


@dataclass(frozen=True)
class SessionPolicy:
    idle_minutes: int = 30
    absolute_hours: int = 12

    @classmethod
    def from_settings(cls) -> SessionPolicy:
        from app.config import get_settings

        s = get_settings()
        return cls(s.session_idle_minutes, s.session_absolute_hours)

    @property
    def idle(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.idle_minutes)

    @property
    def absolute(self) -> dt.timedelta:
        return dt.timedelta(hours=self.absolute_hours)


@dataclass(frozen=True)
class SessionRef:
    """Which session, in which clinic: all a browser tab keeps between clicks."""

    session_id: uuid.UUID
    tenant_id: uuid.UUID
    method: str = "password"  # how it signed in: "password" or "sso"


@dataclass(frozen=True)
class Started:
    ref: SessionRef
    handoff_token: str  # for the browser, once: it redeems it for the cookie (never the cookie itself)


@dataclass(frozen=True)
class Ended:
    """Why a session is over: ``timeout``, ``expired``, ``logout`` or ``account`` (an admin's change)."""

    reason: str


def digest(secret: str) -> str:
    """SHA-256 (hex) of a 256-bit random secret: what the database keeps instead of it."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def start(engine: Engine, actor: Actor, *, method: str = "password", policy: SessionPolicy | None = None,
          now: dt.datetime | None = None) -> Started:
    """Write the session of a sign-in that just succeeded, with its one-time token for the browser."""
    policy = policy or SessionPolicy.from_settings()
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    with tenant_session(engine, actor.tenant_id) as session:
        # the user's sessions over for KEEP_ENDED go (the audit log keeps the sign-ins and sign-outs)
        session.execute(delete(StaffSession).where(
            StaffSession.user_id == actor.user_id, StaffSession.expires_at < now - KEEP_ENDED)
            .execution_options(synchronize_session=False))
        row = StaffSession(
            tenant_id=actor.tenant_id, user_id=actor.user_id, method=method, role=actor.role,
            session_epoch=actor.session_epoch, handoff_hash=digest(token),
            handoff_expires_at=now + dt.timedelta(seconds=HANDOFF_SECONDS), created_at=now,
            last_seen_at=now, idle_expires_at=now + policy.idle, expires_at=now + policy.absolute,
        )
        session.add(row)
        session.flush()
        return Started(SessionRef(row.id, actor.tenant_id, method), token)


def _by_hash(engine: Engine, column, value: str) -> SessionRef | None:  # type: ignore[no-untyped-def]
    """The one cross-clinic read: a session row's id, clinic and sign-in method by a hash, nothing else."""
    with system_session(engine) as session:
        row = session.execute(
            select(StaffSession.id, StaffSession.tenant_id, StaffSession.method).where(column == value)
        ).first()
    return SessionRef(row.id, row.tenant_id, row.method) if row else None


def redeem(engine: Engine, handoff_token: str, *, now: dt.datetime | None = None) -> str | None:
    """Exchange a sign-in's one-time token for the cookie's secret; None when the token is unknown,
    used already, older than ``HANDOFF_SECONDS`` or its session is over. Single use, even when two
    requests race: the token's hash is cleared by a conditional update."""
    now = now or utcnow()
    if not handoff_token:
        return None
    token_hash = digest(handoff_token)
    ref = _by_hash(engine, StaffSession.handoff_hash, token_hash)
    if ref is None:
        return None
    secret = secrets.token_urlsafe(32)
    with tenant_session(engine, ref.tenant_id) as session:
        changed = session.execute(
            update(StaffSession)
            .where(StaffSession.id == ref.session_id, StaffSession.handoff_hash == token_hash,
                   StaffSession.handoff_expires_at > now, StaffSession.revoked_at.is_(None),
                   StaffSession.idle_expires_at > now, StaffSession.expires_at > now)
            .values(secret_hash=digest(secret), handoff_hash=None, handoff_expires_at=None)
            .execution_options(synchronize_session=False)
        ).rowcount
    return secret if changed == 1 else None


def find(engine: Engine, cookie_secret: str | None) -> SessionRef | None:
    """The session a cookie names (whether or not it is still live: ``check`` says)."""
    if not cookie_secret:
        return None
    return _by_hash(engine, StaffSession.secret_hash, digest(cookie_secret))


def check(engine: Engine, ref: SessionRef, *, policy: SessionPolicy | None = None,
          now: dt.datetime | None = None) -> Actor | Ended:
    """The signed-in staff member, freshly read, or why the session is over.

    One query (session, user, clinic by key). Idle and absolute expiry, a revocation anywhere and an
    admin's change (``auth.revocation``) end it; the first tab to see an end records it on the row and
    audits it (``auth.timeout``, ``auth.session_revoked``). Otherwise this counts as activity:
    ``last_seen_at`` and the idle expiry move on, written at most once per ``TOUCH_EVERY``.
    """
    policy = policy or SessionPolicy.from_settings()
    now = now or utcnow()
    with tenant_session(engine, ref.tenant_id) as session:
        found = session.execute(
            select(StaffSession, User, Tenant)
            .join(User, User.id == StaffSession.user_id)
            .join(Tenant, Tenant.id == StaffSession.tenant_id)
            .where(StaffSession.id == ref.session_id)
        ).first()
        if found is None:
            return Ended(SIGNED_OUT)
        row, user, tenant = found
        if row.revoked_at is not None:
            return Ended(row.revoked_reason or SIGNED_OUT)
        actor = auth.actor_of(user, tenant)
        if now >= row.expires_at or now >= row.idle_expires_at:
            reason = EXPIRED if now >= row.expires_at else TIMED_OUT
            if _revoke(session, row.id, reason, now):
                auth.audit_logout(session, actor, reason="timeout", details={"expired": reason == EXPIRED})
            return Ended(reason)
        why = auth.revocation(user, tenant, row.session_epoch, row.role)
        if why is not None:
            if _revoke(session, row.id, ACCOUNT_CHANGED, now):
                auth.audit_revoked(session, actor, why)
            return Ended(ACCOUNT_CHANGED)
        if now - row.last_seen_at >= TOUCH_EVERY:
            row.last_seen_at = now
            row.idle_expires_at = min(now + policy.idle, row.expires_at)
        return actor


def end(engine: Engine, ref: SessionRef, actor: Actor | None = None, *, reason: str = SIGNED_OUT,
        now: dt.datetime | None = None) -> bool:
    """End a session everywhere (sign-out, or an idle tab); audits ``auth.logout`` / ``auth.timeout``
    for ``actor`` when this call ended it. False when it had ended already."""
    now = now or utcnow()
    with tenant_session(engine, ref.tenant_id) as session:
        ended = _revoke(session, ref.session_id, reason, now)
        if ended and actor is not None:
            auth.audit_logout(session, actor, reason="logout" if reason == SIGNED_OUT else "timeout")
        return ended


def end_by_cookie(engine: Engine, cookie_secret: str | None, *, now: dt.datetime | None = None) -> bool:
    """Sign-out through the HTTP route: end the cookie's session (audited as the user's logout)."""
    ref = find(engine, cookie_secret)
    if ref is None:
        return False
    now = now or utcnow()
    with tenant_session(engine, ref.tenant_id) as session:
        found = session.execute(
            select(User, Tenant).join(StaffSession, StaffSession.user_id == User.id)
            .join(Tenant, Tenant.id == User.tenant_id).where(StaffSession.id == ref.session_id)
        ).first()
        ended = _revoke(session, ref.session_id, SIGNED_OUT, now)
        if ended and found is not None:
            auth.audit_logout(session, auth.actor_of(*found), reason="logout")
        return ended


def _revoke(session, session_id: uuid.UUID, reason: str, now: dt.datetime) -> bool:  # type: ignore[no-untyped-def]
    """Mark a live session ended; True only for the call that ended it (a conditional update)."""
    return session.execute(
        update(StaffSession)
        .where(StaffSession.id == session_id, StaffSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason, handoff_hash=None, handoff_expires_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
