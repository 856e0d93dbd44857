"""AppTest fixtures: the real app against the test SQLite database, one clinic with one user per role."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import streamlit as st
from argon2 import PasswordHasher
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Button, Element

from app.config import get_settings
from app.database import engine_for
from app.delivery.runtime import close_runtime
from app.services import passwords
from app.services.permissions import Actor
from app.ui import feedback
from db.enums import Role
from tests.factories import DEFAULT_PASSWORD, make_tenant, make_user

APP = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"


@dataclass(frozen=True)
class Clinic:
    engine: Engine
    admin: Actor
    front_desk: Actor
    analyst: Actor

    def by_role(self, role: Role) -> Actor:
        return {Role.ADMIN: self.admin, Role.FRONT_DESK: self.front_desk, Role.ANALYST: self.analyst}[role]


def _forget_process_caches() -> None:
    close_runtime()  # a screen's background jobs finish before the next test's database comes
    get_settings.cache_clear()
    engine_for.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 parameters: these tests are about screens, not about hashing cost."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def app_engine(sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The empty test database, configured as the app's DATABASE_URL."""
    monkeypatch.setenv("DATABASE_URL", sqlite_engine.url.render_as_string(hide_password=False))
    monkeypatch.delenv("SESSION_IDLE_MINUTES", raising=False)
    monkeypatch.setenv("EMBEDDED_WORKER", "false")  # no background sweeper during screen tests
    _forget_process_caches()
    yield sqlite_engine
    _forget_process_caches()


@pytest.fixture
def clinic(app_engine: Engine) -> Clinic:
    tenant_id = make_tenant(app_engine, "clinic-a", "Al Noor Clinic")
    return Clinic(
        engine=app_engine,
        admin=make_user(app_engine, tenant_id, "amira", Role.ADMIN),
        front_desk=make_user(app_engine, tenant_id, "fatima", Role.FRONT_DESK),
        analyst=make_user(app_engine, tenant_id, "omar", Role.ANALYST),
    )


def new_app() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=30)


def button(at: AppTest, label: str) -> Button:
    """The (form submit) button with this label; fails listing the labels that exist."""
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r}; buttons: {[b.label for b in at.button]}"
    return matches[0]


def form_key(at: AppTest, form: str, name: str) -> str:
    """The key ``form``'s widget ``name`` has now: a saved form's widgets are new ones (``feedback.form_key``)."""
    return feedback.current_key(form, name, at.session_state)


def sign_in(at: AppTest, username: str, password: str = DEFAULT_PASSWORD) -> AppTest:
    """Fill in and submit the sign-in form."""
    if not at.text_input:
        at.run()
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    return button(at, "Sign in").click().run()


LANDING_TITLES = {Role.ADMIN: "Dashboard", Role.FRONT_DESK: "Dashboard", Role.ANALYST: "Analytics"}


def signed_in(actor: Actor) -> AppTest:
    """A fresh app with ``actor`` signed in through the form, showing their landing page."""
    at = sign_in(new_app().run(), actor.username)
    assert not at.exception, at.exception
    assert at.title[0].value == LANDING_TITLES[actor.role]
    return at


def texts(elements: Iterable[Element]) -> list[str]:
    """The text of each element (errors, successes, captions...)."""
    return [str(e.value) for e in elements]
