"""Turning the outcome of a service call into a message next to the form that made it.

A service's ``AppError`` carries a message a clinic clerk understands, so it is shown as is.
Anything else is a bug: it is logged with its traceback and the screen says only that
something went wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from typing import Concatenate, ParamSpec, TypeVar

import streamlit as st

from app.errors import AppError
from app.services.permissions import Actor
from app.ui import session
from app.ui.text import as_text
from db.tenancy import TenantSession

log = logging.getLogger(__name__)

GENERIC_ERROR = "Something went wrong. Please try again; if it keeps happening, tell your administrator."
_FLASH_KEY = "feedback.flash"
_FORMS_KEY = "feedback.forms"  # {form: [generation, the keys form_key gave out in it]}

P = ParamSpec("P")
T = TypeVar("T")


def attempt(call: Callable[[], T]) -> T | None:
    """Run ``call``; on failure show an error where this is called and return None."""
    try:
        return call()
    except AppError as err:
        st.error(as_text(err), icon=":material/error:")
    except Exception:  # the user sees a plain message; the log keeps the traceback
        log.exception("unexpected error while running %s", getattr(call, "__qualname__", call))
        st.error(GENERIC_ERROR, icon=":material/error:")
    return None


def attempt_once(memo: dict, name: str, key: Hashable, call: Callable[[], T]) -> T | None:
    """``attempt(call)``, run again only when ``key`` changes; the result, or the refusal, is kept in
    ``memo[name]``. For work that takes seconds (reading and checking a 100,000-row file) on a form
    whose every click reruns the page."""
    def remembered() -> T:
        kept = memo.get(name)
        if kept is None or kept[0] != key:
            try:
                kept = (key, call(), None)
            except AppError as err:
                kept = (key, None, err)
            memo[name] = kept
        if kept[2] is not None:
            raise kept[2]
        return kept[1]

    return attempt(remembered)


def service(
    fn: Callable[Concatenate[TenantSession, Actor, P], T], *args: P.args, **kwargs: P.kwargs
) -> T | None:
    """Call the service ``fn(session, actor, ...)`` for the signed-in user; show its error if it refuses."""
    return attempt(lambda: session.call(fn, *args, **kwargs))


@contextmanager
def guard() -> Iterator[None]:
    """Around frame code: on an error show the message (no traceback) and stop this run."""
    try:
        yield
    except AppError as err:
        st.error(as_text(err), icon=":material/error:")
        st.stop()
    except Exception:  # see attempt()
        log.exception("unexpected error in the app frame")
        st.error(GENERIC_ERROR, icon=":material/error:")
        st.stop()


def flash(slot: str, message: str) -> None:
    """Keep a success message for ``show_flash(slot)`` after the rerun that follows a change."""
    st.session_state.setdefault(_FLASH_KEY, {})[slot] = message


def show_flash(slot: str) -> None:
    """Show (once) the success message kept for ``slot``."""
    message = st.session_state.get(_FLASH_KEY, {}).pop(slot, None)
    if message:
        st.success(message, icon=":material/check_circle:")


def form_key(form: str, name: str) -> str:
    """The key of ``form``'s widget (or value) ``name`` in the form's current generation.

    ``name`` itself until the form is first renewed, then ``name@1``, ``name@2``... A form is emptied
    after a save by ``new_form``, which starts a new generation: each of its widgets is then a new
    widget to Streamlit and to the browser, drawn at its default (empty, or the stored values it is
    given). Popping the old keys from ``st.session_state`` is not enough: the browser keeps a text
    box's value and sends it back, so the box would show the old text again.
    """
    key = current_key(form, name)
    st.session_state.setdefault(_FORMS_KEY, {}).setdefault(form, [0, set()])[1].add(key)
    return key


def current_key(form: str, name: str, state: Mapping | None = None) -> str:
    """``form_key`` without noting the key; ``state`` is another session state (a test's ``AppTest``)."""
    forms = (st.session_state if state is None else state).get(_FORMS_KEY) or {}
    generation = forms[form][0] if form in forms else 0
    return name if generation == 0 else f"{name}@{generation}"


def new_form(*forms: str) -> None:
    """Draw ``forms`` as new at the next run (e.g. a form after it was saved): every widget whose key
    came from ``form_key`` starts again at its default, and the values kept under such keys (an
    idempotency key, the version the form was read at) are forgotten."""
    kept = st.session_state.setdefault(_FORMS_KEY, {})
    for form in forms:
        generation, keys = kept.get(form, (0, set()))
        for key in keys:
            st.session_state.pop(key, None)
        kept[form] = [generation + 1, set()]
