"""A delivery runtime wired to the loopback Twilio and SMTP peers, with a queue the test drains."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine

from app.config import Settings
from app.delivery import sender
from app.delivery.callbacks import apply_provider_status
from app.delivery.ratelimit import LocalRateLimiter
from app.delivery.runtime import Runtime
from app.providers.registry import build_providers
from db.enums import MessageStatus
from tests.peers.fake_smtp import FakeSMTP
from tests.peers.fake_twilio import FakeTwilio


@dataclass
class RecordingQueue:
    """Records what would be enqueued; ``drain`` runs it synchronously, as a worker would."""

    deliveries: list[tuple[str, list[str]]] = field(default_factory=list)
    calls: list[tuple[str, tuple[Any, ...], float]] = field(default_factory=list)
    on_enqueue: Callable[[list[str]], None] | None = None
    lost: set[str] = field(default_factory=set)  # job ids the test pretends Redis lost

    def enqueue_batches(self, batches) -> None:  # type: ignore[no-untyped-def]
        for job_id, ids in batches:
            if self.on_enqueue:
                self.on_enqueue(ids)
            self.deliveries.append((job_id, ids))

    def alive(self, job_ids) -> set[str]:  # type: ignore[no-untyped-def]
        waiting = {job_id for job_id, _ in self.deliveries}
        return {j for j in job_ids if j in waiting and j not in self.lost}

    @contextlib.contextmanager
    def running(self, job_id: str):  # type: ignore[no-untyped-def]
        yield

    def lose_everything(self) -> None:
        """What a Redis flush does to waiting jobs."""
        self.lost |= {job_id for job_id, _ in self.deliveries}
        self.deliveries.clear()

    def enqueue(self, func: str, *args: Any, delay_seconds: float = 0.0) -> None:
        self.calls.append((func, args, delay_seconds))

    def drain(self, runtime: Runtime) -> dict[str, int]:
        totals: dict[str, int] = {}
        while self.deliveries:
            job_id, ids = self.deliveries.pop(0)
            for outcome, n in sender.deliver_batch(runtime, ids, job_id).items():
                totals[outcome] = totals.get(outcome, 0) + n
        while self.calls:
            func, args, _delay = self.calls.pop(0)
            if func.endswith("apply_provider_status"):
                sid, mid, status, code = args
                apply_provider_status(runtime.engine, provider_message_id=sid, status=MessageStatus(status),
                                      error_code=code, message_id=uuid.UUID(mid), provider="dev", source="playback")
        return totals

    @property
    def enqueued_ids(self) -> list[str]:
        return [i for _, batch in self.deliveries for i in batch]


def delivery_settings(engine: Engine, twilio: FakeTwilio | None = None, smtp: FakeSMTP | None = None,
                      **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": engine.url.render_as_string(hide_password=False),
        "redis_url": None,
        "sms_provider": "twilio" if twilio else "dev",
        "whatsapp_provider": "twilio" if twilio else "dev",
        "email_provider": "smtp" if smtp else "dev",
        "dev_playback_delay_seconds": 0,
        "provider_timeout_seconds": 2.0,
        "sms_rate_per_second": 1000, "whatsapp_rate_per_second": 1000, "email_rate_per_second": 1000,
        "delivery_concurrency": 8,
    }
    if twilio:
        values |= {
            "twilio_account_sid": twilio.account_sid, "twilio_auth_token": twilio.auth_token,
            "twilio_from_number": "+15005550006", "twilio_whatsapp_from": "+14155238886",
            "twilio_api_base_url": twilio.base_url, "twilio_content_api_base_url": twilio.base_url,
            "public_base_url": "https://clinic.example",
        }
    if smtp:
        values |= {"smtp_host": smtp.host, "smtp_port": smtp.port, "smtp_from": "Clinic <no-reply@clinic.example>",
                   "smtp_starttls": False}
    return Settings(**(values | overrides))


@pytest.fixture
def make_runtime(engine: Engine) -> Callable[..., tuple[Runtime, RecordingQueue]]:
    def build(twilio: FakeTwilio | None = None, smtp: FakeSMTP | None = None,
              **overrides: Any) -> tuple[Runtime, RecordingQueue]:
        settings = delivery_settings(engine, twilio, smtp, **overrides)
        queue = RecordingQueue()
        return Runtime(engine, settings, build_providers(settings), LocalRateLimiter(), queue), queue

    return build
