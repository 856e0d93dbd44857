"""Clinics (tenants): created by an operator on the command line, read by everyone signed in."""

from __future__ import annotations

import datetime as dt
import re
import uuid
import zoneinfo
from dataclasses import dataclass

from sqlalchemy import select

from app.config import Settings
from app.errors import ConflictError, NotFoundError, ValidationError
from db.enums import Language
from db.models import AuditEvent, Tenant
from db.tenancy import TenantSession

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


@dataclass(frozen=True)
class ClinicInfo:
    id: uuid.UUID
    name: str
    slug: str
    timezone: str
    default_language: Language
    default_region: str
    sending_paused: bool
    promotional_window: tuple[dt.time, dt.time]  # (start, end), clinic time


def _info(tenant: Tenant) -> ClinicInfo:
    return ClinicInfo(tenant.id, tenant.name, tenant.slug, tenant.timezone,
                      Language(tenant.default_language), tenant.default_region, tenant.sending_paused,
                      tenant.promotional_window)


def create_tenant(
    session: TenantSession, *, name: str, slug: str, timezone: str = "Asia/Riyadh",
    default_language: str = "en", default_region: str = "SA",
) -> ClinicInfo:
    """Create a clinic (system session; the command line's ``create-tenant``)."""
    name = name.strip()
    slug = slug.strip().lower()
    if not name:
        raise ValidationError("The clinic needs a name.", field="name")
    if not SLUG_PATTERN.match(slug):
        raise ValidationError(
            "A slug is 2 to 63 lower-case letters, digits or dashes (e.g. riyadh-north).", field="slug"
        )
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"Unknown time zone '{timezone}'.", field="timezone") from None
    if session.scalar(select(Tenant.id).where(Tenant.slug == slug)):
        raise ConflictError(f"A clinic with the slug '{slug}' already exists.")
    opens, closes = Settings().promotional_window()  # the environment's, read now: each clinic's starting value
    tenant = Tenant(name=name, slug=slug, timezone=timezone,
                    default_language=Language(default_language), default_region=default_region.upper(),
                    promotional_window_start=opens, promotional_window_end=closes)
    session.add(tenant)
    session.flush()
    session.add(AuditEvent(tenant_id=tenant.id, actor_name="command line", action="tenant.create",
                           object_type="tenant", object_id=str(tenant.id), details={"slug": slug}))
    return _info(tenant)


def get_by_slug(session: TenantSession, slug: str) -> ClinicInfo:
    tenant = session.scalar(select(Tenant).where(Tenant.slug == slug.strip().lower()))
    if tenant is None:
        raise NotFoundError(f"No clinic has the slug '{slug}'.")
    return _info(tenant)


def current(session: TenantSession, *, active: bool = False) -> Tenant:
    """The clinic the session is bound to (the one lookup every service uses).

    Raises ``NotFoundError`` when it no longer exists, or (``active=True``, for sending) when it
    has been deactivated.
    """
    tenant = session.get(Tenant, session.tenant_id)
    if tenant is None:
        raise NotFoundError("This clinic no longer exists.")
    if active and not tenant.is_active:
        raise NotFoundError("This clinic is not active.")
    return tenant


def get_clinic(session: TenantSession) -> ClinicInfo:
    """The clinic the session is bound to."""
    return _info(current(session))
