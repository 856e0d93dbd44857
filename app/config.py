"""Settings from the environment, in one typed place.

Every setting is documented in README.md ("Settings"); a test keeps the two in step.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "data" / "clinic.db"

DEFAULT_TWILIO_API_BASE_URL = "https://api.twilio.com"


class Settings(BaseSettings):
    """Process-wide settings. Secrets come only from the environment."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    database_url: str = Field(default=f"sqlite:///{DEFAULT_SQLITE_PATH}")
    database_system_role: str = "clinic_system"  # PostgreSQL: the BYPASSRLS role for cross-clinic work
    migration_database_url: str | None = None  # the tables' owner, for migrate and db-roles (default DATABASE_URL)
    redis_url: str | None = None
    timezone: str = "Asia/Riyadh"

    # Staff sessions
    session_idle_minutes: int = Field(default=30, ge=1)
    session_absolute_hours: int = Field(default=12, ge=1)  # a sign-in ends this long after it, whatever happens
    session_cookie_secure: bool = False  # the sign-in cookie only over https (set it behind TLS)
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_minutes: int = Field(default=15, ge=1)

    # Providers per channel: "dev" (outbox, embedded default), "twilio", "smtp"
    sms_provider: str = "dev"
    whatsapp_provider: str = "dev"
    email_provider: str = "dev"

    # Twilio
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_api_base_url: str = DEFAULT_TWILIO_API_BASE_URL
    twilio_content_api_base_url: str = "https://content.twilio.com"
    public_base_url: str | None = None

    # Unifonic (Saudi SMS)
    unifonic_app_sid: SecretStr | None = None
    unifonic_sender_id: str | None = None
    unifonic_promotional_sender_id: str | None = None
    unifonic_api_base_url: str = "https://el.cloud.unifonic.com"
    unifonic_callback_token: SecretStr | None = None

    # Clinics' own provider credentials are stored encrypted with this Fernet key
    credentials_key: SecretStr | None = None

    # SMTP
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = None
    smtp_starttls: bool = True

    # Delivery
    embedded_worker: bool = True
    rq_queue: str = Field(default="deliveries", pattern=r"^[A-Za-z0-9_.:-]+$")
    sms_rate_per_second: float = Field(default=10.0, gt=0)
    whatsapp_rate_per_second: float = Field(default=80.0, gt=0)
    email_rate_per_second: float = Field(default=10.0, gt=0)
    delivery_concurrency: int = Field(default=16, ge=1, le=256)
    provider_timeout_seconds: float = Field(default=15.0, gt=0)
    max_send_attempts: int = Field(default=5, ge=1)
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    sweep_queued_after_seconds: float = Field(default=300.0, gt=0)
    sweep_sending_after_seconds: float = Field(default=120.0, gt=0)
    sweep_expanding_after_seconds: float = Field(default=120.0, gt=0)
    unknown_resend_after_seconds: float = Field(default=900.0, gt=0)
    # A bulk job completes once every recipient's last attempt is final, or has been with the provider
    # this long without a delivery report (some carriers never send one; the message stays "sent")
    delivery_report_wait_hours: float = Field(default=24.0, gt=0)
    dev_playback_delay_seconds: float = Field(default=2.0, ge=0)

    # The promotional window a new clinic starts with (clinic time); each clinic then keeps its own
    # (tenants.promotional_window_start/end, Settings -> Clinic profile), which the sender enforces
    promotional_window_start: str = "09:00"
    promotional_window_end: str = "19:00"

    # Cost estimates shown while editing templates (not billing: the provider's price is recorded per message)
    sms_price_per_segment: float = Field(default=0.0395, ge=0)
    whatsapp_price_per_message: float = Field(default=0.005, ge=0)
    email_price_per_message: float = Field(default=0.0, ge=0)
    price_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")

    # Message explorer CSV exports (issue 6)
    export_dir: Path = PROJECT_ROOT / "data" / "exports"
    export_inline_max_rows: int = Field(default=50_000, ge=1)
    # Bulk sends (issue 7)
    bulk_confirm_threshold: int = Field(default=500, ge=1)
    bulk_upload_max_mb: float = Field(default=20.0, gt=0)
    # Dashboards (issue 8)
    rollup_refresh_overlap_seconds: float = Field(default=120.0, ge=0)
    dashboard_refresh_seconds: float = Field(default=10.0, ge=2)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(
                f"DATABASE_URL is not a database address ({exc}). "
                "Expected e.g. postgresql+psycopg://user@host:5432/dbname or sqlite:///path.db"
            ) from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(
                f"DATABASE_URL uses '{url.get_backend_name()}'; only PostgreSQL and SQLite are supported"
            )
        return value

    @field_validator("promotional_window_start", "promotional_window_end")
    @classmethod
    def _check_clock_time(cls, value: str) -> str:
        try:
            parsed = dt.datetime.strptime(value.strip(), "%H:%M").time()
        except ValueError:
            raise ValueError(f"'{value}' is not a time of day; expected HH:MM, e.g. 09:00") from None
        return parsed.strftime("%H:%M")

    @model_validator(mode="after")
    def _check_sending_sweep(self) -> Settings:
        if self.sweep_sending_after_seconds <= self.provider_timeout_seconds:
            raise ValueError(
                f"SWEEP_SENDING_AFTER_SECONDS ({self.sweep_sending_after_seconds:g}) must be longer than "
                f"PROVIDER_TIMEOUT_SECONDS ({self.provider_timeout_seconds:g}): a worker may start a request only "
                "while it can end before the sweeper takes the message for lost")
        return self

    def promotional_window(self) -> tuple[dt.time, dt.time]:
        """The daily window (start, end) for promotional messages, in the clinic's time zone."""
        return (dt.time.fromisoformat(self.promotional_window_start),
                dt.time.fromisoformat(self.promotional_window_end))

    def rate_for(self, channel: str) -> float:
        """Messages per second allowed for a channel's sender (shared by all workers)."""
        return float(getattr(self, f"{channel}_rate_per_second"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once from the environment."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'/'.join(str(p) for p in err['loc']).upper()}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"Invalid configuration: {problems}") from None
