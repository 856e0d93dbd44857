"""Read-mostly service results cached for a short while; one decorator, one key scheme.

``clinic_cached(ttl=...)`` turns a service ``fn(session, actor, *args)`` into ``read(actor, *args)``
whose cache entry is keyed by the actor's clinic, the actor's role and the arguments (the cache
is shared by every user of the process, so the clinic and the role are always in the key), and
``read.clear()`` drops the entries after a write. ``key=`` turns arguments that are not hashable
as they stand (a period ending "now", a filter) into the value that decides the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import streamlit as st

from app.services import tenants
from app.services.permissions import Actor
from app.services.tenants import ClinicInfo
from app.ui import session
from db.session import tenant_session
from db.tenancy import TenantSession

P = ParamSpec("P")
T = TypeVar("T")


class ClinicCached(Generic[P, T]):
    """``fn`` behind a cache keyed by (clinic, role, arguments); call it with the actor first."""

    def __init__(self, fn: Callable[Concatenate[TenantSession, Actor, P], T], ttl: float,
                 key: Callable[..., Any] | None, max_entries: int | None) -> None:
        self._fn, self._key = fn, key

        def read(tenant_id: str, role: str, key: Any, _actor: Actor, _args: tuple, _kwargs: dict) -> T:
            with tenant_session(session.engine(), _actor.tenant_id) as db:
                return fn(db, _actor, *_args, **_kwargs)

        # st.cache_data tells functions apart by name: each wrapped service gets its own entries
        read.__qualname__ = read.__name__ = f"clinic_cached_{fn.__module__}_{fn.__qualname__}".replace(".", "_")
        self._read = st.cache_data(ttl=ttl, max_entries=max_entries, show_spinner=False)(read)

    def key(self, actor: Actor, *args: P.args, **kwargs: P.kwargs) -> tuple[str, str, Any]:
        """(clinic, role, arguments' key): what the entry is stored under."""
        chosen = self._key(*args, **kwargs) if self._key else (args, tuple(sorted(kwargs.items())))
        return str(actor.tenant_id), actor.role.value, chosen

    def __call__(self, actor: Actor, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._read(*self.key(actor, *args, **kwargs), actor, args, kwargs)

    def clear(self) -> None:
        """Drop every cached entry of this read (after a write that changes it)."""
        self._read.clear()


def clinic_cached(ttl: float, *, key: Callable[..., Any] | None = None, max_entries: int | None = None
                  ) -> Callable[[Callable[Concatenate[TenantSession, Actor, P], T]], ClinicCached[P, T]]:
    """Cache a service ``fn(session, actor, *args)`` for ``ttl`` seconds, keyed by clinic, role and arguments."""
    def decorate(fn: Callable[Concatenate[TenantSession, Actor, P], T]) -> ClinicCached[P, T]:
        return ClinicCached(fn, ttl, key, max_entries)
    return decorate


@clinic_cached(ttl=300)
def clinic(session_: TenantSession, actor: Actor) -> ClinicInfo:
    """The signed-in user's clinic (name, time zone, ...), at most five minutes old."""
    return tenants.get_clinic(session_)


def forget_clinic(actor: Actor) -> None:
    """Drop the cached clinic details (after its settings changed)."""
    clinic.clear()
