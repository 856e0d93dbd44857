"""Settings (admins): the clinic profile (names, default language, e-mail sender name, promotional
window); which provider carries each channel, with which sender and failover; the clinic's own
provider credentials (write-only); the Unifonic delivery-report address; time zone and country; the
appointments API's keys."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import streamlit as st

from app.services import clinic_settings
from app.services.clinic_settings import (
    DESTINATION_LABELS,
    MAX_STEPS,
    PROVIDER_LABELS,
    PROVIDERS_FOR,
    ClinicProfile,
)
from app.services.permissions import Permission
from app.ui import api_keys, cached, feedback, rtl, session
from app.ui.feedback import form_key
from app.ui.text import plain
from db.enums import Language

actor = session.require_actor(Permission.MANAGE_SETTINGS)
NEW_DLR_URL = "settings.new_dlr_url"


def changed(slot: str, message: str, form: str) -> None:
    """After a save: keep the message and draw ``form`` as new, from the settings as saved (secrets: empty)."""
    feedback.flash(slot, message)
    feedback.new_form(form)
    cached.forget_clinic(actor)
    st.rerun()


st.title("Settings", anchor=False)
st.caption("Who your clinic is to its patients, and how its messages leave: providers, senders and failover. "
           "Every change is recorded in the audit log. Secrets you enter here are stored encrypted and never shown "
           "again.")

current = feedback.service(clinic_settings.get_clinic_settings)
if current is None:
    st.stop()
local = ZoneInfo(current.timezone)

st.subheader("Clinic profile", anchor=False)
feedback.show_flash("profile")
profile = current.profile
rtl.style_arabic_inputs()  # the Arabic name is typed right to left
with st.form("profile"):
    left, right = st.columns(2)
    name_en = left.text_input("Name in English", value=profile.name_en, max_chars=200,
                              key=form_key("profile", "profile_name_en"),
                              help="Shown to staff, and {{ clinic_name }} in English messages.")
    name_ar = right.text_input("Name in Arabic", value=profile.name_ar, max_chars=200,
                               key=form_key("profile", "profile_name_ar"),
                               help="{{ clinic_name }} in Arabic messages; empty: the name in English.")
    languages = [Language.EN, Language.AR]
    language = left.selectbox("Default language", languages, index=languages.index(profile.default_language),
                              format_func=lambda x: {"en": "English", "ar": "Arabic"}[x.value],
                              key=form_key("profile", "profile_language"),
                              help="For messages to someone with no language on record (a number that is not a "
                                   "patient's).")
    email_sender = right.text_input("E-mail sender name", value=profile.email_sender_name, max_chars=100,
                                    key=form_key("profile", "profile_email_sender"),
                                    help="The name patients see as the sender of e-mails; empty: the name in "
                                         "English. The address is the server's.")
    opens = left.time_input("Promotional messages from", value=profile.promotional_window_start, step=1800,
                            key=form_key("profile", "profile_window_start"),
                            help="Clinic time. Saudi operators deliver promotional SMS only in the daytime; "
                                 "09:00-19:00 suits every operator.")
    closes = right.time_input("Promotional messages until", value=profile.promotional_window_end, step=1800,
                              key=form_key("profile", "profile_window_end"),
                              help="Outside the window promotional messages wait. The same time twice: no window.")
    if current.senders:
        st.caption("SMS and WhatsApp senders (set per route under Delivery routes): " + plain(
            " · ".join(f"{route}: {sender}" for route, sender in current.senders)))
    else:
        st.caption("SMS and WhatsApp senders are set per route under Delivery routes; none is set, so the "
                   "server's senders are used.")
    if st.form_submit_button("Save profile") and feedback.service(clinic_settings.set_profile, ClinicProfile(
            name_en, name_ar, language, email_sender, opens, closes)):
        changed("profile", "Saved the clinic profile.", "profile")

st.subheader("Delivery routes", anchor=False)
st.caption("The first provider sends; the next one is tried only when the previous one certainly did not take the "
           "message (credentials refused, no balance, sender not registered, unreachable). Never after a timeout "
           "or a refused number, so a patient never gets the message twice. Leave the first provider empty to use "
           "the server's default.")
feedback.show_flash("route")
for route in current.routes:
    key = f"{route.channel.value}_{route.destination}"
    choices = ["", *PROVIDERS_FOR[route.channel]]
    default = PROVIDER_LABELS.get(route.default_provider, route.default_provider)
    summary = " → ".join(PROVIDER_LABELS[s.provider] for s in route.steps) or f"server default ({default})"
    with st.expander(f"{route.channel.label} · {DESTINATION_LABELS[route.destination]}: {plain(summary)}"), \
            st.form(f"route_{key}"):
        rows = []
        for position in range(MAX_STEPS):
            step = route.steps[position] if position < len(route.steps) else None
            left, middle, right = st.columns(3)
            provider = left.selectbox(
                "Primary provider" if position == 0 else f"Failover {position}", choices,
                index=choices.index(step.provider) if step else 0,
                key=form_key(f"route_{key}", f"provider_{key}_{position}"),
                format_func=lambda p: PROVIDER_LABELS.get(p, "—"))
            sender = middle.text_input("Sender", value=step.sender if step else "",
                                       key=form_key(f"route_{key}", f"sender_{key}_{position}"),
                                       help="Twilio: a number (+1...) or Messaging Service SID (MG...); Unifonic: "
                                            "the registered name, e.g. AgdarClinic. Empty: the server's sender.")
            promotional = right.text_input(
                "Promotional sender (-AD)", value=step.promotional_sender if step else "",
                key=form_key(f"route_{key}", f"promo_{key}_{position}"), disabled=route.channel.value != "sms",
                help="Unifonic SMS only: the registered name ending in -AD, used for promotional messages.")
            rows.append((provider, sender, promotional))
        if st.form_submit_button("Save route") and feedback.service(
                clinic_settings.set_route, route.channel, route.destination, clinic_settings.steps_from_form(rows)):
            changed("route", f"Saved the route for {route.channel.label} ({DESTINATION_LABELS[route.destination]}).",
                    f"route_{key}")

st.subheader("Provider credentials", anchor=False)
if not current.can_store_credentials:
    st.info("This server is not set up to keep a clinic's own provider accounts, so the server's accounts are "
            "used for every route. Your system administrator can turn this on.", icon=":material/info:")
feedback.show_flash("credentials")
for status in current.credentials:
    with st.form(f"credentials_{status.provider}"):
        if status.is_set and status.changed_at:
            when = status.changed_at.astimezone(local).strftime("%d %b %Y, %H:%M")
            st.markdown(f"**{status.label}**: set · last changed {when} by {plain(status.changed_by or 'unknown')}")
        else:
            st.markdown(f"**{status.label}**: not set · the server's credentials are used")
        values = {
            name: st.text_input(label, type="password",
                                key=form_key(f"credentials_{status.provider}", f"cred_{status.provider}_{name}"),
                                autocomplete="off", disabled=not current.can_store_credentials)
            for name, label in status.fields
        }
        save, clear = st.columns(2)
        if save.form_submit_button("Save credentials", disabled=not current.can_store_credentials) and \
                feedback.service(clinic_settings.set_credentials, status.provider, values):
            changed("credentials", f"Saved the {status.label} credentials.", f"credentials_{status.provider}")
        if clear.form_submit_button("Forget credentials", disabled=not status.is_set) and feedback.service(
                clinic_settings.clear_credentials, status.provider):
            changed("credentials", f"Forgot the {status.label} credentials; the server's apply again.",
                    f"credentials_{status.provider}")

st.subheader("Unifonic delivery reports", anchor=False)
if current.dlr_token_created_at:
    st.write(f"This clinic has its own report address since "
             f"{current.dlr_token_created_at.astimezone(local).strftime('%d %b %Y, %H:%M')}.")
else:
    st.write("This clinic has no report address of its own yet.")
new_url = st.session_state.pop(NEW_DLR_URL, None)
if new_url:
    st.warning("Copy this address into Unifonic's console now: it is shown only once.", icon=":material/key:")
    st.code(new_url, language=None)
label = "Replace the report address" if current.dlr_token_created_at else "Create a report address"
if st.button(label, key="rotate_dlr"):
    token = feedback.service(clinic_settings.rotate_dlr_token)
    if token is not None:
        st.session_state[NEW_DLR_URL] = token.callback_url
        st.rerun()

st.subheader("Time zone and country", anchor=False)
feedback.show_flash("locale")
with st.form("locale"):
    timezone = st.text_input("Time zone", value=current.timezone, key=form_key("locale", "locale_timezone"),
                             help="Promotional windows and quiet hours use it, e.g. Asia/Riyadh.")
    region = st.text_input("Default country for local numbers", value=current.default_region,
                           key=form_key("locale", "locale_region"),
                           help="Two letters, e.g. SA: 0501234567 is read as +966501234567.")
    if st.form_submit_button("Save") and feedback.service(clinic_settings.set_locale, timezone=timezone,
                                                          default_region=region):
        changed("locale", "Saved the clinic's time zone and country.", "locale")

api_keys.section(actor, current.timezone)
