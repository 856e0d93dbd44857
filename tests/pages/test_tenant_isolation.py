"""Every page a clinic's admin can open shows nothing of another clinic (read from MENU, so new
pages are covered as soon as they are in the menu)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from app.services import templates
from app.ui import navigation
from db.enums import Role
from db.session import tenant_session
from tests.factories import make_patient, make_tenant, make_user
from tests.pages.conftest import Clinic, signed_in

# Things only clinic A has: its staff usernames, its clinic name, a template, a patient.
CLINIC_A_ONLY = ["amira", "fatima", "omar", "Al Noor Clinic", "secret_a_template", "Hidden Patient", "501112233"]


def _everything_shown(at: AppTest) -> str:
    parts: list[str] = []

    def walk(node) -> None:  # type: ignore[no-untyped-def]
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    parts += [frame.value.to_string() for frame in at.dataframe]
    return "\n".join(parts)


def test_another_clinics_admin_sees_nothing_of_this_clinic_on_any_page(clinic: Clinic) -> None:
    with tenant_session(clinic.engine, clinic.admin.tenant_id) as session:
        templates.create_template(session, clinic.admin, code="secret_a_template", name="A only", channel="sms",
                                  body_en="Only for clinic A")
    make_patient(clinic.engine, clinic.admin.tenant_id, name_en="Hidden Patient", phone="+966501112233")
    other = make_user(clinic.engine, make_tenant(clinic.engine, "clinic-b", "Riyadh Family Care"), "bilal",
                      Role.ADMIN)

    at = signed_in(other)
    visited = []
    for entry in navigation.MENU:
        at.switch_page(f"../pages/{entry.file}").run()
        assert not at.exception, (entry.title, at.exception)
        shown = _everything_shown(at)
        assert "bilal" in shown and "Riyadh Family Care" in shown  # the check does see the screen
        leaked = [marker for marker in CLINIC_A_ONLY if marker in shown]
        assert leaked == [], f"{entry.title} shows clinic A's {leaked}"
        visited.append(entry.title)
    assert visited == [e.title for e in navigation.MENU]  # an admin's menu is every page
