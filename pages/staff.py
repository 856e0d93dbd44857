"""Staff: everyone who can sign in to the clinic; add people, change roles, passwords and access."""

from __future__ import annotations

import streamlit as st

from app.services import staff
from app.services.passwords import MIN_PASSWORD_LENGTH
from app.services.permissions import Permission
from app.ui import cached, feedback, session, times
from app.ui.text import as_text, plain
from db.enums import Role

actor = session.require_actor(Permission.MANAGE_STAFF)
ROLES = list(staff.ROLES_LEAST_PRIVILEGED_FIRST)  # a new account starts with the least it may need


def role_label(role: Role) -> str:
    return role.label


def changed(slot: str, message: str, *forms: str) -> None:
    """After a successful change: keep the message, empty the forms, redraw with fresh data."""
    feedback.flash(slot, message)
    feedback.new_form(*forms)
    st.rerun()



st.title("Staff", anchor=False)
st.caption("Everyone who can sign in to your clinic. Every change here is recorded in the audit log.")

members = feedback.service(staff.list_staff)
clinic = feedback.attempt(lambda: cached.clinic(actor))
if members is None or clinic is None:
    st.stop()
signed_in = times.heading("Last sign-in", clinic.timezone)

st.dataframe(
    [
        {
            "Username": m.username,
            "Name": m.display_name,
            "Role": m.role.label,
            "Active": m.is_active,
            "Locked": m.is_locked,
            "Full contacts": m.can_view_full_contacts or m.role != Role.ANALYST,
            signed_in: times.clinic_time(m.last_login_at, clinic.timezone, label=False) if m.last_login_at
            else "never",
        }
        for m in members
    ],
    hide_index=True,
    column_config={
        "Full contacts": st.column_config.CheckboxColumn(
            help="Sees patients' phone numbers and e-mail addresses unmasked."
        ),
    },
)

add_column, manage_column = st.columns(2, gap="large")

with add_column:
    with st.form("add_user"):
        st.subheader("Add a staff member", anchor=False)
        username = st.text_input(
            "Username", key=feedback.form_key("add_user", "add_username"),
            help="3 to 64 characters: letters, digits, dot, dash, underscore or @.",
        )
        display_name = st.text_input("Full name", key=feedback.form_key("add_user", "add_display_name"))
        email = st.text_input("E-mail (optional)", key=feedback.form_key("add_user", "add_email"))
        role = st.selectbox("Role", ROLES, format_func=role_label, key=feedback.form_key("add_user", "add_role"),
                            help="Analyst: reports only. Front desk: patients and their messages. Admin: everything, "
                                 "staff and settings included.")
        password = st.text_input(
            "Password", type="password", key=feedback.form_key("add_user", "add_password"), autocomplete="new-password",
            help=f"At least {MIN_PASSWORD_LENGTH} characters. Tell it to the new staff member in person.",
        )
        confirm = st.text_input("Repeat the password", type="password",
                                key=feedback.form_key("add_user", "add_confirm"), autocomplete="new-password")
        if st.form_submit_button("Add staff member", type="primary", icon=":material/person_add:"):
            if password != confirm:
                st.error("The two passwords are not the same.", icon=":material/error:")
            else:
                member = feedback.service(
                    staff.create_user, username=username, password=password, role=role,
                    display_name=display_name, email=email,
                )
                if member is not None:
                    changed(
                        "add", f"Added {plain(member.username)} as {member.role.label}.",
                        "add_user",
                    )
    feedback.show_flash("add")

with manage_column:
    st.subheader("Change an account", anchor=False)
    by_id = {str(m.id): m for m in members}
    chosen = st.selectbox(
        "Staff member", list(by_id), key="manage_user",
        format_func=lambda user_id: f"{as_text(by_id[user_id].display_name)} ({as_text(by_id[user_id].username)})",
    )
    member = by_id[chosen]
    state = "active" if member.is_active else "deactivated"
    locked = ", locked after too many failed sign-ins" if member.is_locked else ""
    st.caption(f"{member.role.label}, {state}{locked}.")

    role_tab, access_tab, password_tab, contacts_tab = st.tabs(["Role", "Access", "Password", "Contacts"])

    with role_tab, st.form("change_role"):
        new_role = st.selectbox(
            "New role", ROLES, index=ROLES.index(member.role), format_func=role_label,
            key=feedback.form_key("change_role", f"role_{member.id}"),
        )
        if st.form_submit_button("Change role") and feedback.service(staff.change_role, member.id, new_role):
            changed("role", f"{plain(member.username)} is now {new_role.label}.", "change_role")
    with role_tab:
        feedback.show_flash("role")

    with access_tab:
        if member.is_active:
            st.write("This person can sign in. Deactivating stops that at their next click; nothing is deleted.")
            if st.button("Deactivate account", icon=":material/block:", key="deactivate") and feedback.service(
                staff.set_active, member.id, False
            ):
                changed("access", f"{plain(member.username)} can no longer sign in.")
        else:
            st.write("This account is deactivated.")
            if st.button("Reactivate account", icon=":material/check_circle:", key="reactivate") and feedback.service(
                staff.set_active, member.id, True
            ):
                changed("access", f"{plain(member.username)} can sign in again.")
        if st.button(
            "Unlock account", icon=":material/lock_open:", key="unlock", disabled=not member.is_locked,
            help="Lets someone locked out by wrong passwords try again straight away.",
        ) and feedback.service(staff.unlock, member.id):
            changed("access", f"{plain(member.username)} is unlocked.")
        feedback.show_flash("access")

    with password_tab, st.form("reset_password"):
        new_password = st.text_input(
            "New password", type="password", key=feedback.form_key("reset_password", "reset_password"),
            autocomplete="new-password",
            help=f"At least {MIN_PASSWORD_LENGTH} characters. This also unlocks the account.",
        )
        repeat = st.text_input("Repeat the new password", type="password",
                               key=feedback.form_key("reset_password", "reset_confirm"), autocomplete="new-password")
        if st.form_submit_button("Reset password"):
            if new_password != repeat:
                st.error("The two passwords are not the same.", icon=":material/error:")
            elif feedback.service(staff.reset_password, member.id, new_password):
                changed("password", f"New password set for {plain(member.username)}.",
                        "reset_password")
    with password_tab:
        feedback.show_flash("password")

    with contacts_tab:
        if member.role != Role.ANALYST:
            st.write("Admins and front desk always see patients' phone numbers and e-mail addresses.")
        else:
            with st.form("contact_access"):
                full = st.toggle(
                    "Show full phone numbers and e-mail addresses", value=member.can_view_full_contacts,
                    key=feedback.form_key("contact_access", f"contacts_{member.id}"),
                )
                if st.form_submit_button("Save contact access") and feedback.service(
                    staff.set_full_contact_access, member.id, full
                ):
                    shown = "sees full contact details" if full else "sees masked contact details"
                    changed("contacts", f"{plain(member.username)} now {shown}.", "contact_access")
        feedback.show_flash("contacts")
