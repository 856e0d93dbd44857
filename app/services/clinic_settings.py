"""A clinic's settings: its profile (names in English and Arabic, default language, e-mail sender
name, promotional window), provider routes with senders, its own provider credentials, its
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
from app.services.replies.clinic import clinics_naming
from db.enums import Channel, Language
from db.models import ProviderCredential, Tenant, User
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
    profile: ClinicProfile
    senders: tuple[tuple[str, str], ...]  # (route label, sender) of every route step naming a sender


@dataclass(frozen=True)
class ClinicProfile:
    """Who the clinic is to its patients: the name in each language (``clinic_name`` in messages),
    the language of a patient with none, the e-mail sender name, the promotional window."""

    name_en: str
    name_ar: str
    default_language: Language
    email_sender_name: str  # "": the name in English
    promotional_window_start: dt.time
    promotional_window_end: dt.time  # equal to the start: no window

    @property
    def promotional_window_text(self) -> str:
        if self.promotional_window_start == self.promotional_window_end:
            return "any time of day (no window)"
        return f"{self.promotional_window_start:%H:%M}-{self.promotional_window_end:%H:%M} clinic time"


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
    senders = tuple(
        (f"{route.channel.label} · {DESTINATION_LABELS[route.destination]}", name)
        for route in routes for step in route.steps
        for name in (step.sender, step.promotional_sender) if name
    )
    return ClinicSettings(routes, credentials, settings.credentials_key is not None,
                          tenant.unifonic_dlr_token_created_at, tenant.timezone, tenant.default_region,
                          _profile(tenant), senders)


def _profile(tenant: Tenant) -> ClinicProfile:
    return ClinicProfile(tenant.name, tenant.name_ar or "", Language(tenant.default_language),
                         tenant.email_sender_name or "", tenant.promotional_window_start,
                         tenant.promotional_window_end)


def _display_name(value: str, field: str, what: str, limit: int) -> str:
    """A name as staff typed it, trimmed; refused when too long or with characters a header cannot hold."""
    value = " ".join(value.split())
    if len(value) > limit:
        raise ValidationError(f"The {what} may be at most {limit} characters.", field=field)
    if any(ch in value for ch in '<>"@\\'):
        raise ValidationError(f"The {what} may not contain < > \" @ or \\.", field=field)
    return value


def set_profile(session: TenantSession, actor: Actor, profile: ClinicProfile) -> ClinicProfile:
    """Change the clinic's profile (admins); the fields that changed are audited with old and new values."""
    authorize(session, actor, Permission.MANAGE_SETTINGS)
    name_en = _display_name(profile.name_en, "name_en", "name in English", 200)
    if not name_en:
        raise ValidationError("The clinic needs a name in English.", field="name_en")
    try:
        language = Language(profile.default_language)
    except ValueError:
        raise ValidationError("Choose English or Arabic as the default language.", field="default_language") from None
    for field, value in (("promotional_window_start", profile.promotional_window_start),
                         ("promotional_window_end", profile.promotional_window_end)):
        if not isinstance(value, dt.time) or value.second or value.microsecond:
            raise ValidationError("Give the promotional window in hours and minutes, e.g. 09:00.", field=field)
    wanted = ClinicProfile(name_en, _display_name(profile.name_ar, "name_ar", "name in Arabic", 200), language,
                           _display_name(profile.email_sender_name, "email_sender_name", "e-mail sender name", 100),
                           profile.promotional_window_start.replace(tzinfo=None),
                           profile.promotional_window_end.replace(tzinfo=None))
    tenant = tenants.current(session)
    before = _profile(tenant)
    changes = {name: {"from": _said(getattr(before, name)), "to": _said(getattr(wanted, name))}
               for name in PROFILE_FIELDS if getattr(before, name) != getattr(wanted, name)}
    if not changes:
        return before
    tenant.name, tenant.name_ar, tenant.default_language = wanted.name_en, wanted.name_ar, wanted.default_language
    tenant.email_sender_name = wanted.email_sender_name
    tenant.promotional_window_start = wanted.promotional_window_start
    tenant.promotional_window_end = wanted.promotional_window_end
    audit.record(session, actor, "settings.profile_changed", object_type="tenant", object_id=tenant.id,
                 details=changes)
    session.flush()
    return wanted


PROFILE_FIELDS = ("name_en", "name_ar", "default_language", "email_sender_name", "promotional_window_start",
                  "promotional_window_end")


def _said(value: object) -> str:
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    return value.value if isinstance(value, Language) else str(value)


def set_route(session: TenantSession, actor: Actor, channel: Channel | str, destination: str,
              steps: list[RouteStep], *, settings: Settings | None = None) -> tuple[RouteStep, ...]:
    """Replace one route (primary first, then failovers); an empty list returns to the default.

    A Twilio sender another clinic already names as its own is refused: replies to a number go to
    the clinic that owns it (``app.services.replies.clinic``). The server's shared senders may be
    named by any clinic."""
    authorize(session, actor, Permission.MANAGE_SETTINGS)
    try:
        channel = Channel(channel)
    except ValueError:
        raise ValidationError(f"Unknown channel '{channel}'.", field="channel") from None
    cleaned = check_route(channel, destination, steps)
    tenant = tenants.current(session)
    named = {s.sender for s in cleaned if s.provider == "twilio" and s.sender}
    if named and channel in (Channel.SMS, Channel.WHATSAPP):
        if clinics_naming(session.get_bind(), settings or get_settings(), channel, named, other_than=tenant.id):
            raise ValidationError(f"{', '.join(sorted(named))} already sends {channel.label} for another clinic. A "
                                  "clinic's own number receives its patients' replies, so it cannot be shared: use "
                                  "this clinic's own number, or leave the sender empty for the platform's.",
                                  field="sender")
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
