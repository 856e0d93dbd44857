"""What the user sees when something fails, and the rules every page and UI module keep."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from app.config import get_settings
from app.database import engine_for
from app.ui.feedback import GENERIC_ERROR
from tests.pages.conftest import new_app, sign_in, texts

ROOT = Path(__file__).resolve().parents[2]


def _failing_calls() -> None:
    from app.errors import ValidationError
    from app.ui import feedback

    def refuse() -> None:
        raise ValidationError("That phone number is not valid.")

    def crash() -> None:
        raise RuntimeError("secret internal detail")

    feedback.attempt(refuse)
    feedback.attempt(crash)


def test_service_errors_are_shown_as_is_and_bugs_as_a_generic_message() -> None:
    at = AppTest.from_function(_failing_calls).run()

    assert not at.exception
    assert texts(at.error) == ["That phone number is not valid.", GENERIC_ERROR]


def test_a_database_fault_shows_a_generic_message_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app_engine: Engine
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'not-migrated.db'}")
    get_settings.cache_clear()
    engine_for.cache_clear()

    at = sign_in(new_app().run(), "amira", "correct-horse-battery")

    assert not at.exception
    assert texts(at.error) == [GENERIC_ERROR]


STREAMLIT_IMPORT = re.compile(r"^\s*(import|from)\s+streamlit\b", re.MULTILINE)


def _python_files(*folders: str) -> list[Path]:
    return [p for folder in folders if (ROOT / folder).is_dir() for p in (ROOT / folder).rglob("*.py")]


def _may_import_streamlit(path: Path) -> bool:
    relative = path.relative_to(ROOT)
    return relative == Path("app/streamlit_app.py") or relative.parts[:2] == ("app", "ui")


def test_only_pages_and_the_ui_glue_import_streamlit() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in _python_files("app", "db", "worker")
        if not _may_import_streamlit(p) and STREAMLIT_IMPORT.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


# Raw HTML (unsafe_allow_html, st.html) is checked in tests/security/test_streamlit_hardening.py.
