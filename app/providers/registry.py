"""Which provider serves each channel, from the settings (``SMS_PROVIDER`` and friends)."""

from __future__ import annotations

from pydantic import SecretStr

from app.config import Settings
from app.errors import ConfigurationError
from app.providers.base import Provider, ProviderSet
from app.providers.dev_outbox import DevOutboxProvider
from app.providers.routing import RouteStep
from db.enums import Channel


def _require(settings: Settings, *names: str) -> None:
    missing = [n.upper() for n in names if not getattr(settings, n)]
    if missing:
        raise ConfigurationError(f"Missing settings for the configured provider: {', '.join(missing)}")


def _twilio(settings: Settings, channel: Channel) -> Provider:
    from app.providers.twilio_provider import TwilioProvider

    _require(settings, "twilio_account_sid", "twilio_auth_token")
    if channel == Channel.WHATSAPP:
        _require(settings, "twilio_whatsapp_from")
        from_number, service = settings.twilio_whatsapp_from, None
    else:
        if not (settings.twilio_from_number or settings.twilio_messaging_service_sid):
            raise ConfigurationError("Set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID for Twilio SMS")
        from_number, service = settings.twilio_from_number, settings.twilio_messaging_service_sid
    assert settings.twilio_auth_token is not None and settings.twilio_account_sid is not None
    return TwilioProvider(
        channel, account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(), from_number=from_number,
        messaging_service_sid=service, api_base_url=settings.twilio_api_base_url,
        timeout_seconds=settings.provider_timeout_seconds,
    )


def _smtp(settings: Settings) -> Provider:
    from app.providers.smtp_provider import SmtpProvider

    _require(settings, "smtp_host", "smtp_from")
    assert settings.smtp_host is not None and settings.smtp_from is not None
    return SmtpProvider(
        host=settings.smtp_host, port=settings.smtp_port, username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        sender=settings.smtp_from, starttls=settings.smtp_starttls,
        timeout_seconds=settings.provider_timeout_seconds,
    )


def _unifonic(settings: Settings) -> Provider:
    from app.providers.unifonic_provider import UnifonicProvider

    _require(settings, "unifonic_app_sid", "unifonic_sender_id")
    assert settings.unifonic_app_sid is not None and settings.unifonic_sender_id is not None
    callback = None
    if settings.public_base_url and settings.unifonic_callback_token:
        token = settings.unifonic_callback_token.get_secret_value()
        callback = f"{settings.public_base_url.rstrip('/')}/unifonic/dlr/{token}"
    return UnifonicProvider(
        app_sid=settings.unifonic_app_sid.get_secret_value(), sender_id=settings.unifonic_sender_id,
        base_url=settings.unifonic_api_base_url, timeout_seconds=settings.provider_timeout_seconds,
        status_callback_url=callback, promotional_sender_id=settings.unifonic_promotional_sender_id,
    )


def build_providers(settings: Settings) -> ProviderSet:
    """One provider per channel as configured; ``dev`` (the outbox) when nothing is set."""
    chosen = {
        Channel.SMS: settings.sms_provider.lower(),
        Channel.WHATSAPP: settings.whatsapp_provider.lower(),
        Channel.EMAIL: settings.email_provider.lower(),
    }
    providers: dict[Channel, Provider] = {}
    for channel, name in chosen.items():
        if name == "dev":
            providers[channel] = DevOutboxProvider(channel, delay_seconds=settings.dev_playback_delay_seconds)
        elif name == "twilio" and channel != Channel.EMAIL:
            providers[channel] = _twilio(settings, channel)
        elif name == "smtp" and channel == Channel.EMAIL:
            providers[channel] = _smtp(settings)
        elif name == "unifonic" and channel == Channel.SMS:
            providers[channel] = _unifonic(settings)
        else:
            raise ConfigurationError(f"Unknown provider '{name}' for {channel.label}")
    return ProviderSet(providers)


def build_step_provider(settings: Settings, channel: Channel, step: RouteStep,
                        credentials: dict[str, str] | None = None) -> Provider:
    """The provider for one step of a clinic's route: the settings, with the step's sender and the
    clinic's own credentials (when it stored some) in place of the process-wide ones."""
    update: dict[str, object] = {}
    if step.provider == "twilio":
        if credentials:
            update |= {"twilio_account_sid": credentials["account_sid"],
                       "twilio_auth_token": SecretStr(credentials["auth_token"])}
        if step.sender and channel == Channel.WHATSAPP:
            update["twilio_whatsapp_from"] = step.sender
        elif step.sender:
            service = step.sender.startswith("MG")
            update |= {"twilio_messaging_service_sid": step.sender if service else None,
                       "twilio_from_number": None if service else step.sender}
    elif step.provider == "unifonic":
        if credentials:  # its own account: delivery reports come to the clinic's token (set in Unifonic's console)
            update |= {"unifonic_app_sid": SecretStr(credentials["app_sid"]), "unifonic_callback_token": None}
        if step.sender:
            update["unifonic_sender_id"] = step.sender
        if step.promotional_sender:
            update["unifonic_promotional_sender_id"] = step.promotional_sender
    chosen = {"sms_provider": "dev", "whatsapp_provider": "dev", "email_provider": "dev",
              f"{Channel(channel).value}_provider": step.provider}
    return build_providers(settings.model_copy(update=update | chosen)).for_channel(channel)
