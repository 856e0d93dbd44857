"""A clinic's delivery settings: provider routes with senders, its own provider credentials, its
Unifonic delivery-report token, and its time zone / default region.

Admins only (``MANAGE_SETTINGS``); every change is audited (never with a secret in the details).
Credentials are write-only: stored Fernet-encrypted (``CREDENTIALS_KEY``) and reported back only
as "set" with who changed them and when. The delivery-report token is shown once, when it is
made; only its SHA-256 is stored, and ``POST /unifonic/dlr/<token>`` finds the clinic by it.
"""

from __future__ import annotations

import datetime as dt
import secrets
import zoneinfo
from dataclasses import dataclass

import phonenumbers
from sqlalchemy import select

from app.config import Settings, get_settings
from app.delivery.callbacks import hash_token
from app.errors import ValidationError
from app.providers.credentials import CREDENTIAL_FIELDS, check_credentials, seal
from app.providers.routing import DESTINATION_LABELS as DESTINATION_LABELS  # re-exported for the Settings page
from app.providers.routing import MAX_STEPS as MAX_STEPS
from app.providers.routing import (
    PROVIDER_LABELS,
    PROVIDERS_FOR,
    RouteStep,
    check_route,
    destinations,
    route_key,
    routing_from_settings,
)
from app.services import audit, tenants
from app.services.permissions import Actor, Permission, authorize
from db.enums import Channel
from db.models import ProviderCredential, User
from db.tenancy import TenantSession
from db.types import utcnow

DLR_PATH = "/unifonic/dlr/"


@dataclass(frozen=True)
class RouteView:
    channel: Channel
    destination: str
    steps: tuple[RouteStep, ...]  # empty: the process-wide provider (``default_provider``)
    default_provider: str


@dataclass(frozen=True)
class CredentialStatus:
    provider: str
    label: str
    fields: tuple[tuple[str, str], ...]  # (name, label) of each value the form asks for
    is_set: bool
    changed_at: dt.datetime | None
    changed_by: str


@dataclass(frozen=True)
class ClinicSettings:
    routes: tuple[RouteView, ...]
    credentials: tuple[CredentialStatus, ...]
    can_store_credentials: bool  # CREDENTIALS_KEY is configured
    dlr_token_created_at: dt.datetime | None
    timezone: str
    default_region: str


@dataclass(frozen=True)
class NewDlrToken:
    """Shown once: the token and the full address to paste into Unifonic's console."""

    token: str
    callback_url: str




def _default_provider(settings: Settings, channel: Channel) -> str:
    return str(getattr(settings, f"{channel.value}_provider")).lower()


def get_clinic_settings(session: TenantSession, actor: Actor, *, settings: Settings | None = None) -> ClinicSettings:
    authorize(session, actor, Permission.MANAGE_SETTINGS)
    settings = settings or get_settings()
    tenant = tenants.current(session)
    routing = routing_from_settings(tenant.settings)
    routes = tuple(
        RouteView(channel, destination, routing.steps(channel, destination), _default_provider(settings, channel))
        for channel in PROVIDERS_FOR for destination in destinations(channel)
    )
    stored = {row.provider: row for row in session.scalars(select(ProviderCredential))}
    names = dict(session.execute(select(User.id, User.username).where(
        User.id.in_([row.changed_by_id for row in stored.values() if row.changed_by_id]))).all())
    credentials = tuple(
        CredentialStatus(
            provider=provider, label=PROVIDER_LABELS[provider], fields=tuple((f.name, f.label) for f in fields),
            is_set=provider in stored, changed_at=stored[provider].updated_at if provider in stored else None,
            changed_by=names.get(stored[provider].changed_by_id, "") if provider in stored else "",
        )
        for provider, fields in CREDENTIAL_FIELDS.items()
    )
    return ClinicSettings(routes, credentials, settings.credentials_key is not None,
                          tenant.unifonic_dlr_token_created_at, tenant.timezone, tenant.default_region)


def set_route(session: TenantSession, actor: Actor, channel: Channel | str, destination: str,
              steps: list[RouteStep]) -> tuple[RouteStep, ...]:
    """Replace one route (primary first, then failovers); an empty list returns to the default."""
    authorize(session, actor, Permission.MANAGE_SETTINGS)
    try:
        channel = Channel(channel)
    except ValueError:
        raise ValidationError(f"Unknown channel '{channel}'.", field="channel") from None
    cleaned = check_route(channel, destination, steps)
    tenant = tenants.current(session)
    routing = routing_from_settings(tenant.settings)
    before = routing.steps(channel, destination)
    if before == cleaned:
        return cleaned
    stored = routing.to_settings()
    key = route_key(channel, destination)
    stored.pop(key, None)
    if cleaned:
        stored[key] = [{"provider": s.provider, "sender": s.sender, "promotional_sender": s.promotional_sender}
                       for s in cleaned]
    tenant.settings = {**(tenant.settings or {}), "routing": stored}
    audit.record(session, actor, "settings.route_changed", object_type="tenant", object_id=tenant.id,
                 details={"route": key, "before": [s.provider for s in before],
                          "after": [s.provider for s in cleaned],
                          "senders": [s.sender for s in cleaned]})
    session.flush()
    return cleaned


def steps_from_form(rows: list[tuple[str, str, str]]) -> list[RouteStep]:
    """Route steps from the settings form's rows (provider, sender, promotional sender); an empty
    provider ends the route (so "primary only" is one row)."""
    steps: list[RouteStep] = []
    for provider, sender, promotional in rows:
        if not provider:
            break
        steps.append(RouteStep(provider, sender or "", promotional or ""))
    return steps


def set_credentials(session: TenantSession, actor: Actor, provider: str, values: dict[str, str], *,
                    settings: Settings | None = None) -> bool:
    """Store (or replace) the clinic's own credentials for ``provider``; nothing is ever returned."""
    authorize(session, actor, Permission.MANAGE_SETTINGS)
    settings = settings or get_settings()
    sealed = seal(settings.credentials_key, check_credentials(provider, values))
    row = session.scalar(select(ProviderCredential).where(ProviderCredential.provider == provider))
    if row is None:
        row = ProviderCredential(provider=provider, encrypted=sealed, changed_by_id=actor.user_id)
        session.add(row)
    else:
        row.encrypted, row.changed_by_id, row.updated_at = sealed, actor.user_id, utcnow()
    audit.record(session, actor, "settings.credentials_changed", object_type="provider", object_id=provider,
                 details={"provider": provider, "fields": sorted(values)})
    session.flush()
    return True


def clear_credentials(session: TenantSession, actor: Actor, provider: str) -> bool:
    """Forget the clinic's credentials for ``provider`` (the environment's apply again)."""
    authorize(session, actor, Permission.MANAGE_SETTINGS)
    row = session.scalar(select(ProviderCredential).where(ProviderCredential.provider == provider))
    if row is None:
        return False
    session.delete(row)
    audit.record(session, actor, "settings.credentials_cleared", object_type="provider", object_id=provider,
                 details={"provider": provider})
    session.flush()
    return True


def rotate_dlr_token(session: TenantSession, actor: Actor, *, settings: Settings | None = None) -> NewDlrToken:
    """A new unguessable delivery-report token for the clinic; the previous one stops working."""
    authorize(session, actor, Permission.MANAGE_SETTINGS)
    settings = settings or get_settings()
    tenant = tenants.current(session)
    token = secrets.token_urlsafe(32)
    replaced = tenant.unifonic_dlr_token_hash is not None
    tenant.unifonic_dlr_token_hash, tenant.unifonic_dlr_token_created_at = hash_token(token), utcnow()
    audit.record(session, actor, "settings.dlr_token_rotated" if replaced else "settings.dlr_token_created",
                 object_type="tenant", object_id=tenant.id)
    session.flush()
    base = (settings.public_base_url or "https://<your public address>").rstrip("/")
    return NewDlrToken(token, f"{base}{DLR_PATH}{token}")


def set_locale(session: TenantSession, actor: Actor, *, timezone: str, default_region: str) -> bool:
    """The clinic's time zone (promotional window, quiet hours) and the region for local numbers."""
    authorize(session, actor, Permission.MANAGE_SETTINGS)
    timezone, default_region = timezone.strip(), default_region.strip().upper()
    if timezone not in zoneinfo.available_timezones():
        raise ValidationError(f"'{timezone}' is not a time zone; e.g. Asia/Riyadh.", field="timezone")
    if default_region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationError(f"'{default_region}' is not a country code; e.g. SA.", field="default_region")
    tenant = tenants.current(session)
    before = {"timezone": tenant.timezone, "default_region": tenant.default_region}
    after = {"timezone": timezone, "default_region": default_region}
    if before == after:
        return True
    tenant.timezone, tenant.default_region = timezone, default_region
    audit.record(session, actor, "settings.locale_changed", object_type="tenant", object_id=tenant.id,
                 details={"before": before, "after": after})
    session.flush()
    return True
