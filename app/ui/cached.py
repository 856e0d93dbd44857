"""Read-mostly figures cached for a short while, always keyed by clinic (the cache is shared by all users)."""

from __future__ import annotations

import streamlit as st

from app.services import tenants
from app.services.permissions import Actor
from app.services.tenants import ClinicInfo
from app.ui import session
from db.session import tenant_session


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
