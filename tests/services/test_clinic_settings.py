"""Clinic settings: routes with senders, write-only credentials, delivery-report token, locale."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, select

from app.config import Settings
from app.delivery import callbacks
from app.errors import ConfigurationError, PermissionDenied, ValidationError
from app.providers.routing import ELSEWHERE, SAUDI, RouteStep
from app.services import clinic_settings
from db.enums import Channel, Role
from db.models import AuditEvent, ProviderCredential, Tenant
from db.session import system_session, tenant_session
from tests.factories import make_tenant, make_user

KEY = Fernet.generate_key().decode()
SETTINGS = Settings(credentials_key=KEY, public_base_url="https://notify.clinic.example")


@pytest.fixture
def clinic(engine: Engine):  # type: ignore[no-untyped-def]
    tenant = make_tenant(engine)
    return tenant, make_user(engine, tenant, "boss")


def _audit(engine: Engine, tenant, action: str) -> list[dict]:  # type: ignore[no-untyped-def]
    with system_session(engine) as session:
        return list(session.scalars(select(AuditEvent.details).where(AuditEvent.tenant_id == tenant,
                                                                     AuditEvent.action == action)))


def _route(view: clinic_settings.ClinicSettings, channel: Channel, destination: str) -> clinic_settings.RouteView:
    return next(r for r in view.routes if r.channel == channel and r.destination == destination)


def test_admin_sets_a_route_with_failover_and_it_is_audited(engine, clinic) -> None:
    tenant, admin = clinic
    steps = [RouteStep("unifonic", "AgdarClinic", "AgdarClinic-AD"), RouteStep("twilio", "+15005550006")]
    with tenant_session(engine, tenant) as session:
        clinic_settings.set_route(session, admin, Channel.SMS, SAUDI, steps)
        view = clinic_settings.get_clinic_settings(session, admin, settings=SETTINGS)
    assert _route(view, Channel.SMS, SAUDI).steps == tuple(steps)
    assert _route(view, Channel.SMS, ELSEWHERE).steps == ()  # not chosen: the settings' provider
    assert _route(view, Channel.SMS, ELSEWHERE).default_provider == "dev"
    [details] = _audit(engine, tenant, "settings.route_changed")
    assert details["route"] == "sms:SA" and details["after"] == ["unifonic", "twilio"] and details["before"] == []


def test_an_empty_route_returns_to_the_default(engine, clinic) -> None:
    tenant, admin = clinic
    with tenant_session(engine, tenant) as session:
        clinic_settings.set_route(session, admin, Channel.WHATSAPP, "all", [RouteStep("twilio", "+14155238886")])
        clinic_settings.set_route(session, admin, Channel.WHATSAPP, "all", [])
        view = clinic_settings.get_clinic_settings(session, admin, settings=SETTINGS)
    assert _route(view, Channel.WHATSAPP, "all").steps == ()
    assert len(_audit(engine, tenant, "settings.route_changed")) == 2


@pytest.mark.parametrize("channel,destination,steps,field", [
    (Channel.WHATSAPP, "all", [RouteStep("unifonic")], "provider"),
    (Channel.SMS, SAUDI, [RouteStep("carrier-pigeon")], "provider"),
    (Channel.SMS, SAUDI, [RouteStep("twilio", "AgdarClinic")], "sender"),
    (Channel.WHATSAPP, "all", [RouteStep("twilio", "whatsapp-me")], "sender"),
    (Channel.SMS, SAUDI, [RouteStep("unifonic", "Agdar<script>")], "sender"),
    (Channel.SMS, SAUDI, [RouteStep("unifonic", "AgdarClinic", "AgdarClinic")], "promotional_sender"),
    (Channel.SMS, ELSEWHERE, [RouteStep("twilio", "", "AgdarClinic-AD")], "promotional_sender"),
    (Channel.SMS, SAUDI, [RouteStep("unifonic"), RouteStep("unifonic")], "steps"),
    (Channel.SMS, SAUDI, [RouteStep("unifonic"), RouteStep("twilio"), RouteStep("dev"), RouteStep("dev")], "steps"),
    (Channel.SMS, "moon", [RouteStep("twilio")], "destination"),
    (Channel.EMAIL, "all", [RouteStep("smtp", "me@x.example")], "sender"),
])
def test_bad_routes_are_refused_and_nothing_changes(engine, clinic, channel, destination, steps, field) -> None:
    tenant, admin = clinic
    with tenant_session(engine, tenant) as session:
        with pytest.raises(ValidationError) as info:
            clinic_settings.set_route(session, admin, channel, destination, steps)
        assert info.value.field == field and str(info.value)
    with system_session(engine) as session:
        assert (session.get(Tenant, tenant).settings or {}).get("routing") in (None, {})
    assert _audit(engine, tenant, "settings.route_changed") == []


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ANALYST])
def test_only_admins_see_or_change_settings(engine, clinic, role) -> None:
    tenant, _admin = clinic
    clerk = make_user(engine, tenant, f"clerk-{role.value}", role=role)
    with tenant_session(engine, tenant) as session:
        for call in (
            lambda: clinic_settings.get_clinic_settings(session, clerk, settings=SETTINGS),
            lambda: clinic_settings.set_route(session, clerk, Channel.SMS, SAUDI, [RouteStep("twilio")]),
            lambda: clinic_settings.set_credentials(session, clerk, "twilio", {"account_sid": "AC1", "auth_token": "t"},
                                                    settings=SETTINGS),
            lambda: clinic_settings.clear_credentials(session, clerk, "twilio"),
            lambda: clinic_settings.rotate_dlr_token(session, clerk, settings=SETTINGS),
            lambda: clinic_settings.set_locale(session, clerk, timezone="Asia/Dubai", default_region="AE"),
        ):
            with pytest.raises(PermissionDenied):
                call()


def test_credentials_are_stored_encrypted_and_never_shown_back(engine, clinic) -> None:
    tenant, admin = clinic
    with tenant_session(engine, tenant) as session:
        clinic_settings.set_credentials(session, admin, "twilio", {"account_sid": "AC123", "auth_token": "tok-secret"},
                                        settings=SETTINGS)
        view = clinic_settings.get_clinic_settings(session, admin, settings=SETTINGS)
    twilio = next(c for c in view.credentials if c.provider == "twilio")
    unifonic = next(c for c in view.credentials if c.provider == "unifonic")
    assert twilio.is_set and twilio.changed_by == "boss" and twilio.changed_at is not None
    assert not unifonic.is_set
    assert "tok-secret" not in repr(view)
    with system_session(engine) as session:
        [sealed] = session.scalars(select(ProviderCredential.encrypted))
    assert "tok-secret" not in sealed and "AC123" not in sealed
    [details] = _audit(engine, tenant, "settings.credentials_changed")
    assert details == {"provider": "twilio", "fields": ["account_sid", "auth_token"]}


def test_credentials_without_the_key_are_a_clear_error_and_nothing_is_stored(engine, clinic) -> None:
    tenant, admin = clinic
    with tenant_session(engine, tenant) as session:
        with pytest.raises(ConfigurationError, match="CREDENTIALS_KEY"):
            clinic_settings.set_credentials(session, admin, "unifonic", {"app_sid": "abc"},
                                            settings=Settings(credentials_key=None))
        assert clinic_settings.get_clinic_settings(session, admin, settings=Settings()).can_store_credentials is False
    with system_session(engine) as session:
        assert session.scalars(select(ProviderCredential)).all() == []


@pytest.mark.parametrize("provider,values,field", [
    ("twilio", {"account_sid": "AC1"}, "auth_token"),
    ("unifonic", {"app_sid": "   "}, "app_sid"),
    ("smtp", {"password": "x"}, "provider"),
])
def test_incomplete_credentials_are_refused(engine, clinic, provider, values, field) -> None:
    tenant, admin = clinic
    with tenant_session(engine, tenant) as session:
        with pytest.raises(ValidationError) as info:
            clinic_settings.set_credentials(session, admin, provider, values, settings=SETTINGS)
    assert info.value.field == field


def test_credentials_can_be_replaced_and_cleared_and_stay_in_their_clinic(engine, clinic) -> None:
    tenant, admin = clinic
    other = make_tenant(engine, "other")
    other_admin = make_user(engine, other, "other-boss")
    with tenant_session(engine, tenant) as session:
        clinic_settings.set_credentials(session, admin, "unifonic", {"app_sid": "one"}, settings=SETTINGS)
        clinic_settings.set_credentials(session, admin, "unifonic", {"app_sid": "two"}, settings=SETTINGS)
    with tenant_session(engine, other) as session:
        view = clinic_settings.get_clinic_settings(session, other_admin, settings=SETTINGS)
        assert not any(c.is_set for c in view.credentials)
        assert clinic_settings.clear_credentials(session, other_admin, "unifonic") is False
    with tenant_session(engine, tenant) as session:
        assert clinic_settings.clear_credentials(session, admin, "unifonic") is True
        assert not any(c.is_set for c in clinic_settings.get_clinic_settings(session, admin, settings=SETTINGS)
                       .credentials)
    assert len(_audit(engine, tenant, "settings.credentials_changed")) == 2
    assert len(_audit(engine, tenant, "settings.credentials_cleared")) == 1


def test_dlr_token_is_shown_once_stored_as_a_hash_and_rotatable(engine, clinic) -> None:
    tenant, admin = clinic
    with tenant_session(engine, tenant) as session:
        first = clinic_settings.rotate_dlr_token(session, admin, settings=SETTINGS)
        second = clinic_settings.rotate_dlr_token(session, admin, settings=SETTINGS)
        view = clinic_settings.get_clinic_settings(session, admin, settings=SETTINGS)
    assert len(first.token) >= 40 and first.token != second.token
    assert second.callback_url == f"https://notify.clinic.example/unifonic/dlr/{second.token}"
    assert view.dlr_token_created_at is not None and second.token not in repr(view)
    with system_session(engine) as session:
        stored = session.get(Tenant, tenant).unifonic_dlr_token_hash
        assert stored == callbacks.hash_token(second.token) and second.token not in stored
    assert callbacks.clinic_of_dlr_token(engine, second.token) == tenant
    assert callbacks.clinic_of_dlr_token(engine, first.token) is None
    assert callbacks.clinic_of_dlr_token(engine, "") is None
    assert len(_audit(engine, tenant, "settings.dlr_token_created")) == 1
    assert len(_audit(engine, tenant, "settings.dlr_token_rotated")) == 1


def test_locale_is_validated_and_audited(engine, clinic) -> None:
    tenant, admin = clinic
    with tenant_session(engine, tenant) as session:
        with pytest.raises(ValidationError) as info:
            clinic_settings.set_locale(session, admin, timezone="Mars/Olympus", default_region="SA")
        assert info.value.field == "timezone"
        with pytest.raises(ValidationError) as info:
            clinic_settings.set_locale(session, admin, timezone="Asia/Dubai", default_region="XX")
        assert info.value.field == "default_region"
        clinic_settings.set_locale(session, admin, timezone="Asia/Dubai", default_region="ae")
    with system_session(engine) as session:
        row = session.get(Tenant, tenant)
        assert (row.timezone, row.default_region) == ("Asia/Dubai", "AE")
    [details] = _audit(engine, tenant, "settings.locale_changed")
    assert details["after"] == {"timezone": "Asia/Dubai", "default_region": "AE"}


def test_a_number_another_clinic_sends_from_is_refused_and_nothing_changes(engine) -> None:  # type: ignore[no-untyped-def]
    """Clinic A cannot name clinic B's own WhatsApp number: B's patients' replies would reach A."""
    settings = Settings(credentials_key=KEY, twilio_whatsapp_from="+14155238886")
    a, b = make_tenant(engine, "clinic-a"), make_tenant(engine, "clinic-b")
    admin_a, admin_b = make_user(engine, a, "admin-a"), make_user(engine, b, "admin-b")
    with tenant_session(engine, b) as session:
        clinic_settings.set_route(session, admin_b, Channel.WHATSAPP, "all", [RouteStep("twilio", "+14155550002")],
                                  settings=settings)
    with tenant_session(engine, a) as session, pytest.raises(ValidationError, match="another clinic") as refused:
        clinic_settings.set_route(session, admin_a, Channel.WHATSAPP, "all", [RouteStep("twilio", "+14155550002")],
                                  settings=settings)
    assert refused.value.field == "sender"
    with system_session(engine) as session:
        assert "routing" not in (session.get(Tenant, a).settings or {})
    assert _audit(engine, a, "settings.route_changed") == []
    with tenant_session(engine, a) as session:  # the platform's shared sender, and A's own number, are fine
        clinic_settings.set_route(session, admin_a, Channel.WHATSAPP, "all", [RouteStep("twilio", "+14155238886")],
                                  settings=settings)
        clinic_settings.set_route(session, admin_a, Channel.WHATSAPP, "all", [RouteStep("twilio", "+14155550001")],
                                  settings=settings)
        clinic_settings.set_route(session, admin_a, Channel.SMS, SAUDI, [RouteStep("twilio", "+14155550002")],
                                  settings=settings)  # B's number on another channel is not B's WhatsApp sender
    with tenant_session(engine, b) as session:  # B may name its own number again (its route's other changes)
        clinic_settings.set_route(session, admin_b, Channel.WHATSAPP, "all", [], settings=settings)
        clinic_settings.set_route(session, admin_b, Channel.WHATSAPP, "all", [RouteStep("twilio", "+14155550002")],
                                  settings=settings)
