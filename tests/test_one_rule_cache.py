"""One Streamlit cache decorator (``app.ui.cached.clinic_cached``), keyed by clinic, role and arguments.

The cache is shared by every user of the process: an entry made for one clinic or one role must
never answer another. Reads of clinic data are cached only through the decorator.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.ui import cached
from db.enums import Role
from db.tenancy import TenantSession
from tests.factories import make_tenant, make_user

ROOT = Path(__file__).resolve().parents[1]
PURE = {("app/ui/reports.py", "_figure"), ("app/ui/reports.py", "_csv")}  # functions of their data alone
_calls = itertools.count()


def _who(session: TenantSession, actor, label: str) -> tuple:  # type: ignore[no-untyped-def]
    return session.tenant_id, actor.role, label, next(_calls)


def test_two_clinics_and_two_roles_never_share_an_entry(sqlite_engine: Engine,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cached.session, "engine", lambda: sqlite_engine)
    a, b = make_tenant(sqlite_engine, "clinic-a"), make_tenant(sqlite_engine, "clinic-b")
    admin_a, analyst_a = make_user(sqlite_engine, a, "amira"), make_user(sqlite_engine, a, "omar", Role.ANALYST)
    admin_b = make_user(sqlite_engine, b, "bilal")
    read = cached.clinic_cached(ttl=60)(_who)
    read.clear()
    first = {who.username: read(who, "same") for who in (admin_a, analyst_a, admin_b)}
    assert [(v[0], v[1]) for v in first.values()] == [(a, Role.ADMIN), (a, Role.ANALYST), (b, Role.ADMIN)]
    assert len({v[3] for v in first.values()}) == 3  # three entries, each computed for its own reader
    assert read(admin_a, "same") == first["amira"]  # a second read is the cached one
    assert read(admin_a, "other")[3] != first["amira"][3]  # the arguments are in the key
    assert {read.key(w, "same") for w in (admin_a, analyst_a, admin_b)} == {
        (str(a), "admin", (("same",), ())), (str(a), "analyst", (("same",), ())), (str(b), "admin", (("same",), ()))}
    read.clear()
    assert read(admin_a, "same")[3] != first["amira"][3]  # cleared after a write


def test_clinic_data_is_cached_only_through_the_one_decorator() -> None:
    found = []
    for path in [*sorted((ROOT / "app").rglob("*.py")), *sorted((ROOT / "pages").rglob("*.py"))]:
        name = str(path.relative_to(ROOT))
        if name == "app/ui/cached.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (name, node.name) not in PURE:
                for decorator in node.decorator_list:
                    target = decorator.func if isinstance(decorator, ast.Call) else decorator
                    if isinstance(target, ast.Attribute) and target.attr == "cache_data":
                        found.append(f"{name}: {node.name}")
    assert found == [], "cache clinic reads with app.ui.cached.clinic_cached (keyed by clinic, role and arguments)"
