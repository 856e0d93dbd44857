"""Each role's menu: exactly the pages its permissions allow, and no way around it."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from app.services import staff
from app.services.permissions import Actor, Permission
from app.ui import navigation
from db.enums import Role
from db.session import tenant_session
from tests.factories import make_user
from tests.pages.conftest import LANDING_TITLES, Clinic, signed_in

EXPECTED_MENUS = {
    Role.ADMIN: [
        "Dashboard", "Messages", "Inbox", "Templates", "Bulk send", "Reminders", "Patients", "Appointments",
        "Analytics", "Staff", "Settings", "Audit log",
    ],
    Role.FRONT_DESK: ["Dashboard", "Messages", "Inbox", "Templates", "Bulk send", "Patients", "Appointments"],
    Role.ANALYST: ["Dashboard", "Messages", "Templates", "Analytics"],
}


def actor(role: Role) -> Actor:
    return Actor(user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), username="x", display_name="X", role=role)


@pytest.mark.parametrize(("role", "titles"), EXPECTED_MENUS.items())
def test_menu_titles_per_role(role: Role, titles: list[str]) -> None:
    assert navigation.menu_titles(actor(role)) == titles


def test_menu_table_is_consistent() -> None:
    assert navigation.MENU[0].title == "Dashboard"
    assert navigation.MENU[0].permission == Permission.VIEW_DASHBOARD  # every role has a first page
    for entry in navigation.MENU:
        assert entry.path.is_file(), f"{entry.file} is in the menu but pages/{entry.file} does not exist"
        assert entry.section in navigation.SECTIONS
    assert len({e.url_path for e in navigation.MENU}) == len(navigation.MENU)
    assert len({e.title for e in navigation.MENU}) == len(navigation.MENU)


def test_every_page_file_is_in_the_menu() -> None:
    files = {p.name for p in navigation.PAGES_DIR.glob("*.py")}
    assert files == {e.file for e in navigation.MENU}


@pytest.mark.parametrize("role", list(Role))
def test_the_running_app_registers_exactly_the_roles_pages(clinic: Clinic, role: Role) -> None:
    at = signed_in(clinic.by_role(role))
    allowed = set(EXPECTED_MENUS[role])

    for entry in navigation.MENU:
        if entry.title in allowed:
            at.switch_page(f"../pages/{entry.file}").run()
            assert not at.exception, at.exception
            assert at.title[0].value == entry.title
        else:
            with pytest.raises(ValueError, match="Could not find a navigation page"):
                at.switch_page(f"../pages/{entry.file}")


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ANALYST])
def test_non_admins_cannot_reach_staff(clinic: Clinic, role: Role) -> None:
    at = signed_in(clinic.by_role(role))

    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("../pages/staff.py")
    at.run()
    assert at.title[0].value == LANDING_TITLES[role]
    assert "Add staff member" not in [b.label for b in at.button]


def test_a_demoted_admin_loses_the_staff_page_at_the_next_click(clinic: Clinic) -> None:
    second_admin = make_user(clinic.engine, clinic.admin.tenant_id, "hassan", Role.ADMIN)
    at = signed_in(clinic.admin)
    at.switch_page("../pages/staff.py").run()
    assert at.title[0].value == "Staff"

    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        staff.change_role(session, second_admin, clinic.admin.user_id, Role.ANALYST)
    at.run()

    assert not at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"]  # signed out: sign in again
    with pytest.raises(ValueError):
        at.switch_page("../pages/staff.py")
    at = signed_in(dataclasses.replace(clinic.admin, role=Role.ANALYST))  # now an analyst: their landing page
    with pytest.raises(ValueError):
        at.switch_page("../pages/staff.py")
