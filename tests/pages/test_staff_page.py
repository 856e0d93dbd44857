"""The Staff page (admins): the list of accounts and every change an admin can make to them."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app.errors import AuthenticationError
from app.services import auth
from app.services.permissions import Actor
from db.enums import Role
from tests.factories import user_row
from tests.pages.conftest import Clinic, button, form_key, signed_in, texts

NEW_PASSWORD = "a-brand-new-password"
LAYLA_PASSWORD = "layla-password-1"


@pytest.fixture
def at(clinic: Clinic) -> AppTest:
    """The Staff page, with the clinic's admin signed in."""
    app = signed_in(clinic.admin)
    app.switch_page("../pages/staff.py").run()
    assert app.title[0].value == "Staff"
    return app


def table(at: AppTest) -> dict[str, dict]:
    """The staff table as {username: row}."""
    rows = at.dataframe[0].value.to_dict("records")
    return {row["Username"]: row for row in rows}


def fill_new_user(at: AppTest, *, username: str = "layla", password: str = LAYLA_PASSWORD,
                  confirm: str | None = None, role: Role = Role.FRONT_DESK) -> AppTest:
    def key(name: str) -> str:
        return form_key(at, "add_user", name)

    at.text_input(key=key("add_username")).input(username)
    at.text_input(key=key("add_display_name")).input("Layla Hamad")
    at.text_input(key=key("add_email")).input("layla@example.com")
    at.selectbox(key=key("add_role")).set_value(role)
    at.text_input(key=key("add_password")).input(password)
    at.text_input(key=key("add_confirm")).input(password if confirm is None else confirm)
    return button(at, "Add staff member").click().run()


def choose(at: AppTest, member: Actor) -> AppTest:
    return at.selectbox(key="manage_user").set_value(str(member.user_id)).run()


def test_the_table_lists_every_account(at: AppTest) -> None:
    rows = table(at)

    assert set(rows) == {"amira", "fatima", "omar"}
    assert rows["omar"]["Role"] == "Analyst"
    assert rows["fatima"]["Active"] is True
    assert rows["fatima"]["Locked"] is False
    assert rows["omar"]["Full contacts"] is False
    signed_in = "Last sign-in (Asia/Riyadh)"  # clinic time, and the zone is named
    assert rows["amira"][signed_in] != "never"  # she just signed in
    assert rows["fatima"][signed_in] == "never"  # not "None"
    assert not at.exception


def test_a_new_account_starts_with_the_least_privileged_role(at: AppTest) -> None:
    assert at.selectbox(key="add_role").value == Role.ANALYST
    assert at.selectbox(key="add_role").options == ["Analyst", "Front desk", "Admin"]


def test_add_a_user_and_see_it_listed(at: AppTest, clinic: Clinic) -> None:
    fill_new_user(at, role=Role.ANALYST)

    assert not at.error
    assert texts(at.success) == ["Added layla as Analyst."]
    assert table(at)["layla"]["Name"] == "Layla Hamad"
    assert table(at)["layla"]["Role"] == "Analyst"
    assert auth.authenticate(clinic.engine, "layla", LAYLA_PASSWORD).role == Role.ANALYST


ADD_FORM = ("add_username", "add_display_name", "add_email", "add_password", "add_confirm")


def test_the_add_form_is_empty_and_new_after_adding_someone(at: AppTest) -> None:
    """New widgets, not only emptied values: a browser keeps a text box's value while it is the same widget."""
    before = {name: at.text_input(key=name).id for name in ADD_FORM}
    fill_new_user(at, role=Role.FRONT_DESK)

    assert texts(at.success) == ["Added layla as Front desk."]
    for name in ADD_FORM:
        box = at.text_input(key=form_key(at, "add_user", name))
        assert box.value == "", name
        assert box.id != before[name], name
    assert at.selectbox(key=form_key(at, "add_user", "add_role")).value == Role.ANALYST  # the default again

    fill_new_user(at, username="nora")  # the new form adds the next person
    assert texts(at.success) == ["Added nora as Front desk."]
    assert {"layla", "nora"} <= set(table(at))


def test_a_short_password_is_refused_with_the_reason(at: AppTest) -> None:
    fill_new_user(at, password="short")

    assert texts(at.error) == ["The password must be at least 10 characters long."]
    assert "layla" not in table(at)
    assert at.text_input(key="add_username").value == "layla"  # nothing typed is lost


def test_mismatched_passwords_are_refused(at: AppTest) -> None:
    fill_new_user(at, confirm="something-else-1")

    assert texts(at.error) == ["The two passwords are not the same."]
    assert "layla" not in table(at)


def test_a_duplicate_username_is_refused(at: AppTest) -> None:
    fill_new_user(at, username="Fatima")

    assert texts(at.error) == ["The username 'fatima' is already taken."]


def test_a_bad_username_is_refused(at: AppTest) -> None:
    fill_new_user(at, username="x")

    assert "A username is 3 to 64 characters" in at.error[0].value


def test_change_a_role(at: AppTest, clinic: Clinic) -> None:
    choose(at, clinic.front_desk)
    at.selectbox(key=f"role_{clinic.front_desk.user_id}").set_value(Role.ANALYST)
    button(at, "Change role").click().run()

    assert texts(at.success) == ["fatima is now Analyst."]
    assert table(at)["fatima"]["Role"] == "Analyst"
    assert at.selectbox(key=form_key(at, "change_role", f"role_{clinic.front_desk.user_id}")).value == Role.ANALYST
    assert user_row(clinic.engine, "fatima").role == Role.ANALYST


def test_the_last_admin_cannot_be_demoted(at: AppTest, clinic: Clinic) -> None:
    choose(at, clinic.admin)
    at.selectbox(key=f"role_{clinic.admin.user_id}").set_value(Role.FRONT_DESK)
    button(at, "Change role").click().run()

    assert texts(at.error) == ["The clinic needs at least one active admin; make someone else admin first."]
    assert table(at)["amira"]["Role"] == "Admin"


def test_deactivate_and_reactivate(at: AppTest, clinic: Clinic) -> None:
    choose(at, clinic.front_desk)
    button(at, "Deactivate account").click().run()

    assert texts(at.success) == ["fatima can no longer sign in."]
    assert table(at)["fatima"]["Active"] is False
    with pytest.raises(AuthenticationError, match="deactivated"):
        auth.authenticate(clinic.engine, "fatima", "correct-horse-battery")

    button(at, "Reactivate account").click().run()

    assert texts(at.success) == ["fatima can sign in again."]
    assert table(at)["fatima"]["Active"] is True


def test_an_admin_cannot_deactivate_themselves(at: AppTest, clinic: Clinic) -> None:
    choose(at, clinic.admin)
    button(at, "Deactivate account").click().run()

    assert texts(at.error) == ["You cannot deactivate your own account."]
    assert table(at)["amira"]["Active"] is True


def lock(clinic: Clinic, username: str) -> None:
    for _ in range(5):
        with pytest.raises(AuthenticationError):
            auth.authenticate(clinic.engine, username, "wrong-password")


def test_reset_a_password_also_unlocks(at: AppTest, clinic: Clinic) -> None:
    lock(clinic, "fatima")
    choose(at, clinic.front_desk)
    assert table(at)["fatima"]["Locked"] is True

    at.text_input(key="reset_password").input(NEW_PASSWORD)
    at.text_input(key="reset_confirm").input(NEW_PASSWORD)
    typed = {name: at.text_input(key=name).id for name in ("reset_password", "reset_confirm")}
    button(at, "Reset password").click().run()

    assert texts(at.success) == ["New password set for fatima."]
    assert table(at)["fatima"]["Locked"] is False
    for name in ("reset_password", "reset_confirm"):  # emptied, as new boxes
        box = at.text_input(key=form_key(at, "reset_password", name))
        assert box.value == "" and box.id != typed[name], name
    with pytest.raises(auth.PasswordChangeRequired):  # unlocked; fatima chooses her own password next
        auth.authenticate(clinic.engine, "fatima", NEW_PASSWORD)


def test_a_short_new_password_is_refused(at: AppTest, clinic: Clinic) -> None:
    choose(at, clinic.front_desk)
    at.text_input(key="reset_password").input("short")
    at.text_input(key="reset_confirm").input("short")
    button(at, "Reset password").click().run()

    assert texts(at.error) == ["The password must be at least 10 characters long."]


def test_unlock(at: AppTest, clinic: Clinic) -> None:
    choose(at, clinic.analyst)
    assert button(at, "Unlock account").disabled  # nothing to unlock yet

    lock(clinic, "omar")
    at.run()
    assert table(at)["omar"]["Locked"] is True
    assert "Analyst, active, locked after too many failed sign-ins." in texts(at.caption)
    button(at, "Unlock account").click().run()

    assert texts(at.success) == ["omar is unlocked."]
    assert table(at)["omar"]["Locked"] is False
    assert auth.authenticate(clinic.engine, "omar", "correct-horse-battery").username == "omar"


def test_full_contact_access_for_an_analyst(at: AppTest, clinic: Clinic) -> None:
    choose(at, clinic.analyst)
    at.toggle(key=f"contacts_{clinic.analyst.user_id}").set_value(True)
    button(at, "Save contact access").click().run()

    assert texts(at.success) == ["omar now sees full contact details."]
    assert table(at)["omar"]["Full contacts"] is True
    assert at.toggle(key=form_key(at, "contact_access", f"contacts_{clinic.analyst.user_id}")).value is True
    assert user_row(clinic.engine, "omar").can_view_full_contacts is True


def test_contact_access_is_not_offered_for_front_desk(at: AppTest, clinic: Clinic) -> None:
    choose(at, clinic.front_desk)

    assert "Save contact access" not in [b.label for b in at.button]
