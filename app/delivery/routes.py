"""Which providers carry a message: the clinic's route for its channel and destination, in order.

``RouteResolver`` lives for one delivery batch: each (clinic, channel, destination) is resolved
once, and a clinic's stored credentials are read and decrypted once. Providers built for a route
step are kept on the runtime (keyed by the step and the credentials), so HTTP clients are reused
across batches. A step that cannot be built (missing settings, unreadable credentials) becomes an
``UnavailableProvider``: it refuses every message as "not processed, configuration", so the next
step of the route takes over and staff see why in the timeline.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

from sqlalchemy import select

from app.delivery.runtime import Runtime
from app.errors import AppError
from app.providers.base import LookupResult, NotProcessed, OutgoingMessage, Provider
from app.providers.credentials import unseal
from app.providers.registry import build_step_provider
from app.providers.routing import RouteStep, destination_of, routing_from_settings
from db.enums import Channel
from db.models import ProviderCredential, Tenant
from db.session import tenant_session

Route = tuple[Provider, ...]


class UnavailableProvider:
    """Stands in for a route step that cannot be used; says why on every send."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def send(self, message: OutgoingMessage):  # type: ignore[no-untyped-def]
        raise NotProcessed(self.reason, code="provider-not-configured", provider=self.name, configuration=True)

    def lookup(self, message: OutgoingMessage, *, provider_message_id: str | None,
               sent_after: dt.datetime) -> LookupResult | None:
        return LookupResult(found=False)  # it never sent anything


class RouteResolver:
    """The route of each message of one batch (call from one thread)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._routes: dict[tuple[uuid.UUID, Channel, str], Route] = {}
        self._credentials: dict[uuid.UUID, dict[str, dict[str, str] | str]] = {}

    def route(self, tenant: Tenant, channel: Channel, recipient: str) -> Route:
        """The providers to try in order (raises PermanentFailure when the channel has none at all)."""
        key = (tenant.id, channel, destination_of(channel, recipient))
        found = self._routes.get(key)
        if found is None:
            found = self._routes[key] = self._resolve(tenant, channel, key[2])
        return found

    def _resolve(self, tenant: Tenant, channel: Channel, destination: str) -> Route:
        steps = routing_from_settings(tenant.settings).steps(channel, destination)
        if not steps:
            return (self.runtime.providers.for_channel(channel),)
        stored = self._stored_credentials(tenant.id)
        return tuple(self._provider(channel, step, stored.get(step.provider)) for step in steps)

    def _stored_credentials(self, tenant_id: uuid.UUID) -> dict[str, dict[str, str] | str]:
        """The clinic's decrypted credentials per provider (a str: why they cannot be read)."""
        if tenant_id not in self._credentials:
            with tenant_session(self.runtime.engine, tenant_id) as session:
                rows = session.execute(select(ProviderCredential.provider, ProviderCredential.encrypted)
                                       .where(ProviderCredential.tenant_id == tenant_id)).all()
            found: dict[str, dict[str, str] | str] = {}
            for provider, sealed in rows:
                try:
                    found[provider] = unseal(self.runtime.settings.credentials_key, sealed)
                except AppError as exc:
                    found[provider] = str(exc)
            self._credentials[tenant_id] = found
        return self._credentials[tenant_id]

    def _provider(self, channel: Channel, step: RouteStep, credentials: dict[str, str] | str | None) -> Provider:
        if isinstance(credentials, str):
            return UnavailableProvider(step.provider, credentials)
        fingerprint = hashlib.sha256(repr(sorted((credentials or {}).items())).encode()).hexdigest()
        key = (channel, step, fingerprint)
        cache = self.runtime.step_providers
        provider = cache.get(key)
        if provider is None:
            try:
                provider = build_step_provider(self.runtime.settings, channel, step, credentials)
            except (AppError, ValueError) as exc:
                provider = UnavailableProvider(step.provider, f"{step.provider} is not set up for this clinic: {exc}")
            provider = cache.setdefault(key, provider)
        return provider


def lookup_providers(runtime: Runtime, tenant: Tenant, channel: Channel, recipient: str,
                     provider_name: str | None) -> Route:
    """Who may have a message: the provider that accepted it, else every provider of its route."""
    route = RouteResolver(runtime).route(tenant, channel, recipient)
    if provider_name:
        named = tuple(p for p in route if p.name == provider_name)
        return named or route
    return route
