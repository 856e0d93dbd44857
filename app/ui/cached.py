"""Read-mostly figures cached for a short while, always keyed by clinic (the cache is shared by all users)."""

from __future__ import annotations

import streamlit as st

from app.services import overview, tenants
from app.services.overview import Headline
from app.services.permissions import Actor
from app.services.tenants import ClinicInfo
from app.ui import session
from db.enums import Role
from db.session import tenant_session


@st.cache_data(ttl=60, show_spinner=False)
def _headline(tenant_id: str, role: str, _actor: Actor) -> Headline:
    with tenant_session(session.engine(), _actor.tenant_id) as db:
        return overview.headline(db, _actor)


def headline(actor: Actor) -> Headline:
    """The Home page's counts for the actor's clinic, at most a minute old."""
    return _headline(str(actor.tenant_id), actor.role.value, actor)


def forget_headline(actor: Actor) -> None:
    """Drop the cached counts of the actor's clinic (after a change, or when the user asks)."""
    for role in Role:
        _headline.clear(str(actor.tenant_id), role.value, actor)


@st.cache_data(ttl=300, show_spinner=False)
def _clinic(tenant_id: str, _actor: Actor) -> ClinicInfo:
    with tenant_session(session.engine(), _actor.tenant_id) as db:
        return tenants.get_clinic(db)


def clinic(actor: Actor) -> ClinicInfo:
    """The signed-in user's clinic (name, time zone, ...), at most five minutes old."""
    return _clinic(str(actor.tenant_id), actor)


def forget_clinic(actor: Actor) -> None:
    """Drop the cached clinic details (after its settings changed)."""
    _clinic.clear(str(actor.tenant_id), actor)
