"""The README's role matrix is the truth: pages against the menu, service functions by calling them.

The README section "Who may do what" has two tables. Pages are checked against ``MENU`` and
``ROLE_PERMISSIONS``; each service function is called as each role in clinic A (``CALLS`` says
how) and must either work or raise ``PermissionDenied``, as the table says. A page in the menu,
or a role-checked service function in ``app/services``, missing from the README fails here.
"""

from __future__ import annotations

import ast
import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.errors import PermissionDenied
from app.services import audit_log, overview, staff, templates
from app.services.permissions import ROLE_PERMISSIONS, Actor
from app.ui.navigation import MENU
from db.enums import Role
from db.types import utcnow
from tests.factories import DEFAULT_PASSWORD
from tests.security.conftest import World

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
ROLES_BY_HEADER = {role.label.lower(): role for role in Role}


def readme_table(first_header: str) -> dict[str, dict[Role, bool]]:
    """The README table whose first column is ``first_header``: row name -> role -> allowed."""
    lines = README.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(rf"^\|\s*{first_header}\s*\|", line)), None)
    assert start is not None, f"README has no table starting '| {first_header} |'"
    header = [cell.strip().lower() for cell in lines[start].strip().strip("|").split("|")]
    roles = [ROLES_BY_HEADER[h] for h in header[1:]]
    assert set(roles) == set(Role), f"the '{first_header}' table needs one column per role"
    table: dict[str, dict[Role, bool]] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        name, *cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert {c for c in cells} <= {"allowed", "refused"}, f"README row {name!r}: write allowed or refused"
        assert name not in table, f"README lists {name!r} twice"
        table[name.replace("`", "")] = {role: cell == "allowed" for role, cell in zip(roles, cells, strict=True)}
    return table


PAGES = readme_table("page")
SERVICES = readme_table("service function")


def test_every_menu_page_is_in_the_readme_and_nothing_else() -> None:
    assert {e.title for e in MENU} - set(PAGES) == set(), "pages missing from the README role matrix"
    assert set(PAGES) - {e.title for e in MENU} == set(), "the README lists pages that are not in the menu"


@pytest.mark.parametrize("title", sorted(PAGES))
def test_pages_match_the_menu_permissions(title: str) -> None:
    entry = next(e for e in MENU if e.title == title)
    actual = {role: entry.permission in ROLE_PERMISSIONS[role] for role in Role}
    assert actual == PAGES[title], f"{title}: code says {actual}"


# How to call each documented service function as ``actor`` of clinic A (one line each).
Call = Callable[[World, Actor], Any]
CALLS: dict[str, Call] = {
    "overview.headline": lambda w, a: w.call(overview.headline, a),
    "templates.list_templates": lambda w, a: w.call(templates.list_templates, a),
    "templates.get_template": lambda w, a: w.call(templates.get_template, a, w.a.template_id),
    "templates.get_version": lambda w, a: w.call(templates.get_version, a, w.a.template_id, 1),
    "templates.diff_versions": lambda w, a: w.call(templates.diff_versions, a, w.a.template_id, 1, 1),
    "templates.template_usage": lambda w, a: w.call(templates.template_usage, a, w.a.template_id),
    "templates.preview": lambda w, a: w.call(templates.preview, a, w.a.template_id),
    "templates.create_template": lambda w, a: w.call(
        templates.create_template, a, code=w.unique("new"), name="New", channel="SMS", body_en="Hello"),
    "templates.update_template": lambda w, a: w.call(templates.update_template, a, w.a.template_id, note="x"),
    "templates.duplicate_template": lambda w, a: w.call(
        templates.duplicate_template, a, w.a.template_id, new_code=w.unique("copy"), new_name="Copy"),
    "templates.set_active": lambda w, a: w.call(templates.set_active, a, w.a.template_id, True),
    "templates.restore_version": lambda w, a: w.call(templates.restore_version, a, w.a.template_id, 1),
    "templates.delete_template": lambda w, a: w.call(templates.delete_template, a, w.new_template()),
    "templates.test_send": lambda w, a: templates.test_send(w.engine, w.queue, a, w.a.template_id,
                                                            recipient="+966501112233"),
    "MessagingService.send_message": lambda w, a: w.messaging.send_message(
        w.a.tenant_id, "SMS", patient_id=w.a.patient_id, text="Hello", actor=a),
    "MessagingService.schedule": lambda w, a: w.messaging.schedule(
        w.a.tenant_id, "SMS", utcnow() + dt.timedelta(days=1), patient_id=w.a.patient_id, text="Hi", actor=a),
    "MessagingService.retry": lambda w, a: w.messaging.retry(w.a.tenant_id, [w.failed_message()], actor=a),
    "MessagingService.cancel (messages)": lambda w, a: w.messaging.cancel(
        w.a.tenant_id, message_ids=[w.queued_message()], actor=a),
    "MessagingService.cancel (bulk job)": lambda w, a: w.messaging.cancel(
        w.a.tenant_id, bulk_job_id=w.bulk_job(), actor=a),
    "MessagingService.send_bulk_messages": lambda w, a: w.messaging.send_bulk_messages(
        ["+966501234567"], "Closed on Friday", "SMS", w.a.tenant_id, actor=a),
    "MessagingService.pause_sending": lambda w, a: w.messaging.pause_sending(w.a.tenant_id, actor=a, reason="x"),
    "MessagingService.resume_sending": lambda w, a: w.messaging.resume_sending(w.a.tenant_id, actor=a),
    "staff.list_staff": lambda w, a: w.call(staff.list_staff, a),
    "staff.create_user": lambda w, a: w.call(staff.create_user, a, username=w.unique("nora"),
                                             password=DEFAULT_PASSWORD, role=Role.ANALYST),
    "staff.change_role": lambda w, a: w.call(staff.change_role, a, w.a.analyst.user_id, Role.ANALYST),
    "staff.set_active": lambda w, a: w.call(staff.set_active, a, w.a.analyst.user_id, True),
    "staff.reset_password": lambda w, a: w.call(staff.reset_password, a, w.a.analyst.user_id, DEFAULT_PASSWORD),
    "staff.unlock": lambda w, a: w.call(staff.unlock, a, w.a.analyst.user_id),
    "staff.set_full_contact_access": lambda w, a: w.call(staff.set_full_contact_access, a, w.a.analyst.user_id,
                                                         True),
    "audit_log.search": lambda w, a: w.call(audit_log.search, a),
    "audit_log.choices": lambda w, a: w.call(audit_log.choices, a),
    "audit_log.export_csv": lambda w, a: w.call(audit_log.export_csv, a),
}


def test_every_documented_service_function_can_be_called_here() -> None:
    assert set(SERVICES) - set(CALLS) == set(), "add a line to CALLS for these README rows"
    assert set(CALLS) - set(SERVICES) == set(), "these calls are not in the README role matrix"


def _role_checked_functions() -> set[str]:
    """``module.function`` / ``Class.method`` in app/services whose body checks the role."""
    found: set[str] = set()
    for path in (ROOT / "app" / "services").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        scopes = [(path.stem, tree.body)] + [(n.name, n.body) for n in tree.body if isinstance(n, ast.ClassDef)]
        for owner, body in scopes:
            for fn in body:
                if not isinstance(fn, ast.FunctionDef) or fn.name.startswith("_"):
                    continue
                calls = {c.func.id if isinstance(c.func, ast.Name) else getattr(c.func, "attr", "")
                         for c in ast.walk(fn) if isinstance(c, ast.Call)}
                if calls & {"authorize", "_check"}:
                    found.add(f"{owner}.{fn.name}")
    return found


def test_every_role_checked_service_function_is_in_the_readme() -> None:
    documented = {name.split(" (")[0] for name in SERVICES}
    assert _role_checked_functions() - documented == set(), "add these to the README role matrix"


def test_service_functions_allow_and_refuse_as_documented(world: World) -> None:
    wrong: list[str] = []
    for name, expected in SERVICES.items():
        for role, allowed in expected.items():
            try:
                CALLS[name](world, world.a.by_role(role))
                outcome = True
            except PermissionDenied:
                outcome = False
            if outcome != allowed:
                wrong.append(f"{name} as {role.value}: README says {'allowed' if allowed else 'refused'}")
    assert wrong == []
