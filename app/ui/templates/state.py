"""What the Templates views share: the cached reads (keyed by clinic and role, dropped after every
change), what the picker opens after a change, and running a change with its refusal shown under
the field it is about."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app.errors import AppError, ConflictError, ValidationError
from app.services import templates
from app.services.permissions import Actor
from app.services.templates import TemplateSummary
from app.ui import cached, feedback
from app.ui.text import plain

log = logging.getLogger(__name__)
T = TypeVar("T")

NEW = "new"
OPEN_KEY = "templates_open"  # the picker
NEXT_KEY = "templates.open_next"  # what the picker shows after the next rerun (set after a change)

cached_detail = cached.clinic_cached(ttl=60)(templates.get_template)
cached_usage = cached.clinic_cached(ttl=60)(templates.template_usage)
_summaries = cached.clinic_cached(ttl=60)(templates.list_templates)


def summaries(actor: Actor, channel: str | None = None, active: bool | None = None,
              search: str = "") -> list[TemplateSummary]:
    """The clinic's templates with usage, filtered (cached)."""
    return _summaries(actor, channel=channel, active=active, search=search.strip())


def forget() -> None:
    """After a change: drop the cached lists and details."""
    _summaries.clear()
    cached_detail.clear()
    cached_usage.clear()


def open_next(template_id: str, slot: str, message: str) -> None:
    """After a successful change: say so, show ``template_id`` (or nothing) and redraw."""
    forget()
    feedback.flash(slot, message)
    st.session_state[NEXT_KEY] = template_id
    st.rerun()


def submit(action: Callable[[], T], slots: dict[str, DeltaGenerator], general: DeltaGenerator) -> T | None:
    """Run a change; a refusal is shown under the field it is about (else under the button)."""
    try:
        return action()
    except ValidationError as err:
        slots.get(err.field or "", general).error(plain(err), icon=":material/error:")
    except ConflictError as err:  # a code already taken
        slots.get("code", general).error(plain(err), icon=":material/error:")
    except AppError as err:
        general.error(plain(err), icon=":material/error:")
    except Exception:  # the user sees a plain message; the log keeps the traceback
        log.exception("unexpected error while saving a template")
        general.error(feedback.GENERIC_ERROR, icon=":material/error:")
    return None
