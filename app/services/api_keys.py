"""Keys the clinic's own system uses to call the appointments API (``worker/fhir_api.py``).

An admin creates a key (``create``), copies it once, and revokes it when it leaks or the system
it was given to goes (``revoke``: refused from the next request on). Only the key's SHA-256 hash
is stored; ``key_prefix`` (its first characters) names it on screens and in the audit log.

A request presents the key; ``authenticate`` finds its clinic by the hash (the one cross-clinic
read, as a staff session is found by its cookie) and everything after that runs in that clinic
only, as ``ApiKeyIdentity.actor()``.
"""

from __future__ import annotations

import datetime as dt
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import aliased

from app.config import Settings, get_settings
from app.errors import ConflictError, NotFoundError, ValidationError
from app.services import audit
from app.services.permissions import Actor, Permission, authorize
from app.services.staff_sessions import digest
from db.enums import Role
from db.models import ApiKey, Tenant, User
from db.session import system_session, tenant_session
from db.tenancy import TenantSession
from db.types import utcnow

KEY_PREFIX = "ck_"  # every key starts with it: a secret scanner (or a person) can tell what leaked
SHOWN_PREFIX_LENGTH = 11  # "ck_" and 8 characters of the random part: enough to tell keys apart on screen
MAX_NAME_LENGTH = 100
MAX_LIVE_KEYS = 20
MAX_PRESENTED_LENGTH = 200  # a longer "key" is not one of ours: refused before hashing
TOUCH_EVERY = dt.timedelta(minutes=1)  # last_used_at is written at most this often: a request is not a write
API_PATH = "/fhir"  # where worker/fhir_api.py serves, under the callback service's public address


@dataclass(frozen=True)
class ApiKeyView:
    """A key as staff see it: never the key itself."""

    id: uuid.UUID
    name: str
    prefix: str
    created_at: dt.datetime
    created_by: str  # username, "" when the account is gone
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None
    revoked_by: str

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class NewApiKey(NamedTuple):
    """What ``create`` returns: the key's view and the key itself, shown once and never again."""

    view: ApiKeyView
    plaintext: str


@dataclass(frozen=True)
class ApiKeyIdentity:
    """Who is calling the API: one key of one clinic."""

    tenant_id: uuid.UUID
    key_id: uuid.UUID
    name: str
    prefix: str

    def actor(self) -> Actor:
        """The key as the services see it: a named integration of its clinic, recorded by name and prefix."""
        return Actor.system(self.tenant_id, name=f"API key {self.prefix} ({self.name})", role=Role.ADMIN)


def _clean_name(name: str) -> str:
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in str(name)):
        raise ValidationError("The name may not contain control or formatting characters (line breaks, "
                              "direction marks).", field="name")
    name = " ".join(str(name).split())
    if not name:
        raise ValidationError("Give the key a name that says which system uses it, e.g. 'Clinic HIS'.",
                              field="name")
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError(f"The name is too long ({len(name)} characters; at most {MAX_NAME_LENGTH}).",
                              field="name")
    return name


def _views(session: TenantSession, *conditions) -> list[ApiKeyView]:  # type: ignore[no-untyped-def]
    creator, revoker = aliased(User), aliased(User)
    rows = session.execute(
        select(ApiKey, creator.username, revoker.username)
        .outerjoin(creator, creator.id == ApiKey.created_by_id)
        .outerjoin(revoker, revoker.id == ApiKey.revoked_by_id)
        .where(*conditions)
        .order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc(), ApiKey.id))
    return [ApiKeyView(key.id, key.name, key.key_prefix, key.created_at, created_by or "", key.last_used_at,
                       key.revoked_at, revoked_by or "") for key, created_by, revoked_by in rows]


def list_keys(session: TenantSession, actor: Actor) -> list[ApiKeyView]:
    """The clinic's keys, live ones first, newest first."""
    authorize(session, actor, Permission.MANAGE_REMINDERS)
    return _views(session)


def create(session: TenantSession, actor: Actor, name: str) -> NewApiKey:
    """A new key for the clinic's system; the key itself is in the answer and nowhere else (audited)."""
    authorize(session, actor, Permission.MANAGE_REMINDERS)
    name = _clean_name(name)
    live = list(session.scalars(select(ApiKey.name).where(ApiKey.revoked_at.is_(None))))
    if name.casefold() in {other.casefold() for other in live}:
        raise ConflictError(f"A key named '{name}' exists already; revoke it first or choose another name.")
    if len(live) >= MAX_LIVE_KEYS:
        raise ConflictError(f"This clinic has {len(live)} keys in use (at most {MAX_LIVE_KEYS}); "
                            "revoke one it no longer needs first.")
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name, key_prefix=plaintext[:SHOWN_PREFIX_LENGTH], key_hash=digest(plaintext),
                 created_by_id=actor.user_id, created_at=utcnow())
    session.add(key)
    session.flush()
    audit.record(session, actor, "api_key.create", object_type="api_key", object_id=key.id,
                 details={"name": name, "prefix": key.key_prefix})
    return NewApiKey(_views(session, ApiKey.id == key.id)[0], plaintext)


def revoke(session: TenantSession, actor: Actor, key_id: uuid.UUID) -> ApiKeyView:
    """Stop a key working, from its next request on (audited). Revoking it again changes nothing."""
    authorize(session, actor, Permission.MANAGE_REMINDERS)
    key = session.scalar(select(ApiKey).where(ApiKey.id == key_id))
    if key is None:
        raise NotFoundError("That API key does not exist in this clinic.")
    if key.revoked_at is None:
        key.revoked_at, key.revoked_by_id = utcnow(), actor.user_id
        audit.record(session, actor, "api_key.revoke", object_type="api_key", object_id=key.id,
                     details={"name": key.name, "prefix": key.key_prefix})
        session.flush()
    return _views(session, ApiKey.id == key.id)[0]


def authenticate(engine: Engine, presented_key: str | None, *, now: dt.datetime | None = None
                 ) -> ApiKeyIdentity | None:
    """The live key ``presented_key`` is, in an active clinic; None for anything else (unknown,
    revoked, malformed, a deactivated clinic). Notes its use at most once a ``TOUCH_EVERY``."""
    if not presented_key or not presented_key.startswith(KEY_PREFIX) or len(presented_key) > MAX_PRESENTED_LENGTH:
        return None
    now = now or utcnow()
    with system_session(engine) as session:  # the clinic is not known yet: find the key by its hash only
        row = session.execute(
            select(ApiKey.id, ApiKey.tenant_id, ApiKey.name, ApiKey.key_prefix, ApiKey.last_used_at)
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .where(ApiKey.key_hash == digest(presented_key), ApiKey.revoked_at.is_(None), Tenant.is_active)
        ).first()
    if row is None:
        return None
    if row.last_used_at is None or row.last_used_at <= now - TOUCH_EVERY:
        with tenant_session(engine, row.tenant_id) as session:
            session.execute(
                update(ApiKey).where(ApiKey.id == row.id, or_(ApiKey.last_used_at.is_(None),
                                                              ApiKey.last_used_at <= now - TOUCH_EVERY))
                .values(last_used_at=now).execution_options(synchronize_session=False))
    return ApiKeyIdentity(row.tenant_id, row.id, row.name, row.key_prefix)


def api_address(settings: Settings | None = None) -> str:
    """The API's base address for the clinic's system (``PUBLIC_BASE_URL`` + ``/fhir``)."""
    base = (settings or get_settings()).public_base_url
    return f"{(base or 'https://<your public address>').rstrip('/')}{API_PATH}"
