"""Real RQ workers (subprocesses) on real Redis and PostgreSQL, sending to the loopback Twilio.

Crash a worker with SIGKILL mid-send, or wipe Redis mid-send: every valid recipient still gets
exactly one request at the provider, and every message ends delivered.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import Engine, func, select

from app.delivery.runtime import Runtime
from app.services.bulk import wizard
from app.services.messaging import MessagingService
from db.enums import BulkJobStatus, Channel, Language, MessageStatus, Role
from db.models import BulkJob, Message, Patient
from db.session import system_session, tenant_session
from tests.delivery.conftest import RecordingQueue, delivery_settings
from tests.factories import make_tenant, make_user, script_runtime
from tests.peers._threaded import ThreadedASGIServer
from tests.peers.fake_twilio import FakeTwilio
from worker.webhooks import create_app

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
TOTAL = 2000


@pytest.fixture
def isolated_redis(redis_url: str) -> Iterator[str]:
    """A Redis database of its own for this test (flushed before and after)."""
    base = redis_url.rsplit("/", 1)[0]
    url = f"{base}/{random.randint(8, 15)}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


def _worker_env(pg_url: str, redis_url: str, queue: str, fake: FakeTwilio) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": pg_url, "REDIS_URL": redis_url, "RQ_QUEUE": queue,
        "SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": fake.account_sid, "TWILIO_AUTH_TOKEN": fake.auth_token,
        "TWILIO_FROM_NUMBER": "+15005550006", "TWILIO_API_BASE_URL": fake.base_url,
        "PUBLIC_BASE_URL": "https://clinic.example", "SMS_RATE_PER_SECOND": "400",
        "DELIVERY_CONCURRENCY": "8", "SWEEP_INTERVAL_SECONDS": "1", "SWEEP_QUEUED_AFTER_SECONDS": "4",
        "SWEEP_SENDING_AFTER_SECONDS": "8", "UNKNOWN_RESEND_AFTER_SECONDS": "8", "PROVIDER_TIMEOUT_SECONDS": "2",
    }


def _start_worker(env: dict[str, str], name: str, log_dir: Path) -> subprocess.Popen[bytes]:
    log = (log_dir / f"worker-{name}.log").open("wb")
    # Its own process group: RQ forks the scheduler, and a crash is the whole group dying (as when
    # a container or a systemd unit is killed); killing only the parent would orphan the scheduler.
    return subprocess.Popen([sys.executable, "-m", "worker", "--name", name], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(worker: subprocess.Popen[bytes], how: signal.Signals) -> None:
    try:
        os.killpg(worker.pid, how)
    except ProcessLookupError:
        pass
    worker.wait(20)


def _counts(engine: Engine, job_id: uuid.UUID) -> dict[str, int]:
    with system_session(engine) as session:
        rows = session.execute(select(Message.status, func.count()).where(Message.bulk_job_id == job_id)
                               .group_by(Message.status)).all()
        return {MessageStatus(s).value: n for s, n in rows}


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _numbers() -> list[str]:
    return [f"+96650{n:07d}" for n in range(1_000_000, 1_000_000 + TOTAL)]


def _bulk(pg_engine: Engine, settings_env: dict[str, str], fake: FakeTwilio, redis_url: str, queue: str):  # type: ignore[no-untyped-def]
    from app.delivery.queue import RQJobQueue

    tenant = make_tenant(pg_engine)
    rq_queue = RQJobQueue(redis.Redis.from_url(redis_url), queue)
    numbers = [*_numbers(), "+966 50 1000000", "12345"]  # one duplicate, one invalid
    result = MessagingService(script_runtime(pg_engine, rq_queue)).send_bulk_messages(
        recipients=numbers, message="Your appointment is tomorrow", channel="SMS", tenant_id=tenant)
    assert result.accepted == TOTAL and len(result.rejected) == 2
    assert rq_queue.queue.count == TOTAL // 500  # one job per 500 messages
    return result


def _deliver_all_callbacks(pg_engine: Engine, fake: FakeTwilio, job_id: uuid.UUID) -> None:
    """Twilio reports every message delivered, through the real callback service."""
    holder: dict[str, Runtime] = {}
    server = ThreadedASGIServer(create_app(lambda: holder["runtime"]))
    from app.delivery.queue import InProcessQueue
    from app.delivery.ratelimit import LocalRateLimiter
    from app.providers.registry import build_providers

    settings = delivery_settings(pg_engine, fake, public_base_url="https://clinic.example")
    holder["runtime"] = Runtime(pg_engine, settings, build_providers(settings), LocalRateLimiter(),
                                InProcessQueue())
    server.start()
    hooks = []
    for message in fake.messages:
        public = fake.status_callback_url(message["sid"])
        assert public is not None and public.startswith("https://clinic.example/twilio/status?mid=")
        local = server.base_url + public.removeprefix("https://clinic.example")
        # Twilio signs the public URL; our service behind the proxy sees the local one.
        hooks.append(fake.build_status_callback(message["sid"], "delivered", url=local, sign_url=public))

    def post_all(part: list) -> list[int]:  # type: ignore[type-arg]
        with httpx.Client() as http:
            return [http.post(h.url, data=h.params, headers=h.headers).status_code for h in part]

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = [code for codes in pool.map(post_all, [hooks[i::8] for i in range(8)]) for code in codes]
    finally:
        server.stop()
    assert set(statuses) == {204}
    assert _counts(pg_engine, job_id) == {"delivered": TOTAL}


def _assert_exactly_once(fake: FakeTwilio) -> None:
    counts = fake.count_by_to(created_only=True)
    assert len(counts) == TOTAL
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}
    assert set(counts) == set(_numbers())


def test_worker_killed_mid_send_another_finishes_exactly_once(pg_url, pg_engine, isolated_redis, tmp_path) -> None:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with FakeTwilio(latency_ms=15) as fake:
        env = _worker_env(pg_url, isolated_redis, queue, fake)
        result = _bulk(pg_engine, env, fake, isolated_redis, queue)
        first = _start_worker(env, "first", tmp_path)
        try:
            _wait(lambda: len(fake.sends) >= 400, 60, "the first worker to send 400")
            _stop(first, signal.SIGKILL)
        finally:
            _stop(first, signal.SIGKILL)
        sent_before = len(fake.sends)
        assert sent_before < TOTAL
        second = _start_worker(env, "second", tmp_path)
        try:
            _wait(lambda: _counts(pg_engine, result.bulk_job_id).get("sent", 0) == TOTAL, 180,
                  "every message to be sent")
        finally:
            _stop(second, signal.SIGTERM)
        _assert_exactly_once(fake)
        _deliver_all_callbacks(pg_engine, fake, result.bulk_job_id)


def test_redis_wiped_mid_send_the_sweeper_finishes_exactly_once(pg_url, pg_engine, isolated_redis, tmp_path) -> None:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with FakeTwilio(latency_ms=15) as fake:
        env = _worker_env(pg_url, isolated_redis, queue, fake)
        result = _bulk(pg_engine, env, fake, isolated_redis, queue)
        worker = _start_worker(env, "only", tmp_path)
        try:
            _wait(lambda: len(fake.sends) >= 300, 60, "the worker to send 300")
            redis.Redis.from_url(isolated_redis).flushdb()
            _wait(lambda: _counts(pg_engine, result.bulk_job_id).get("sent", 0) == TOTAL, 180,
                  "every message to be sent after Redis was wiped")
        finally:
            _stop(worker, signal.SIGTERM)
        _assert_exactly_once(fake)


def test_a_lost_bulk_expansion_is_asked_for_again_and_each_patient_gets_one_message(
        pg_url, pg_engine, isolated_redis, tmp_path) -> None:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    numbers = _numbers()[:600]
    tenant = make_tenant(pg_engine)
    admin = make_user(pg_engine, tenant, "amira", Role.ADMIN)
    with tenant_session(pg_engine, tenant) as session:
        session.add_all(Patient(name_en=f"Patient {i}", name_ar="", phone_e164=number, language=Language.EN)
                        for i, number in enumerate(numbers))
    with tenant_session(pg_engine, tenant) as session:  # confirmed; the ask for its expansion never arrives
        session.info["queue"] = RecordingQueue()
        created = wizard.confirm(session, admin, wizard.Draft(
            idempotency_key=wizard.new_draft_key(), audience={"kind": "all"}, channel=Channel.SMS,
            body_en="The clinic is closed on Friday."), typed_count=len(numbers))
    with FakeTwilio(latency_ms=5) as fake:
        env = {**_worker_env(pg_url, isolated_redis, queue, fake), "SWEEP_EXPANDING_AFTER_SECONDS": "1"}
        worker = _start_worker(env, "only", tmp_path)
        try:
            _wait(lambda: _counts(pg_engine, created.bulk_job_id).get("sent", 0) == len(numbers), 120,
                  "the sweeper to have the job expanded and every message sent")
        finally:
            _stop(worker, signal.SIGTERM)
        counts = fake.count_by_to(created_only=True)
        assert set(counts) == set(numbers) and set(counts.values()) == {1}
    with system_session(pg_engine) as session:
        job = session.get(BulkJob, created.bulk_job_id)
        assert job is not None and BulkJobStatus(job.status) != BulkJobStatus.EXPANDING
        assert job.accepted_count == len(numbers)
