"""Pause, resume and cancel of a bulk job that is sending at the cap, as a user waits for them.

    python bench/bench_job_switch.py [--messages 3000] [--cap 100] [--latency-ms 200]
    python bench/bench_job_switch.py --patients 1000000   # a job to every one of 1,000,000 patients

With ``--patients N`` the clinic has N patients (written by COPY) and the job goes to all of them:
the workers prepare it in chunks (the expansion) while they send it, so pause and cancel act on a
job of N messages that is still being prepared and sending at the cap.

Two real worker processes (RQ on Redis, PostgreSQL) send a bulk job to the loopback Twilio (a
separate process answering after ``--latency-ms``) at ``--cap`` messages/second. While it sends:
pause (how long the call takes; how many provider requests the fake received after it returned),
resume (from the call to the next provider request), then cancel (as pause). The fake's receive
times and this process's clock are both CLOCK_MONOTONIC, so "after it returned" is exact.

The floor printed beside each call is the raw statement the switch needs: one ``UPDATE`` of the
job row, timed in the same run on the same database.
"""

from __future__ import annotations

import argparse
import os
import time

from _support import isolated_redis, temporary_database
from bench_delivery import _env, _worker


def _bulk(database_url: str, redis_url: str, count: int):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    import redis

    from app.delivery.queue import RQJobQueue
    from app.delivery.runtime import build_runtime
    from app.services import tenants
    from app.services.messaging import MessagingService
    from db.session import make_engine, system_session

    engine = make_engine(database_url)
    with system_session(engine) as session:
        tenant = tenants.create_tenant(session, name="Bench switch", slug="bench-switch").id
    numbers = [f"+96650{n:07d}" for n in range(3_000_000, 3_000_000 + count)]
    runtime = replace(build_runtime(engine=engine), queue=RQJobQueue(redis.Redis.from_url(redis_url), "bench"))
    result = MessagingService(runtime).send_bulk_messages(
        recipients=numbers, message="Your appointment is tomorrow at 10:00", channel="SMS", tenant_id=tenant)
    return engine, tenant, result.bulk_job_id, runtime.queue


def _bulk_to_patients(database_url: str, redis_url: str, count: int):  # type: ignore[no-untyped-def]
    """A job to all of ``count`` patients, prepared by the workers (the worker's expansion job)."""
    import redis
    from bench_bulk_expansion import _admin, _seed

    from app.delivery.queue import RQJobQueue
    from app.services.bulk import wizard
    from app.services.queueing import use_queue
    from db.session import make_engine, tenant_session

    tenant, job_id, seeded = _seed(database_url, count, "Your appointment is tomorrow at 10:00")
    print(f"seeded {count:,} patients by COPY in {seeded:.1f} s")
    engine = make_engine(database_url)
    queue = RQJobQueue(redis.Redis.from_url(redis_url), "bench")
    with tenant_session(engine, tenant) as session:
        use_queue(session, queue)
        wizard.start_expansion(session, _admin(engine, tenant), job_id)
    return engine, tenant, job_id, queue


def _call(engine, tenant, queue, function, job_id):  # type: ignore[no-untyped-def]
    from app.services.permissions import Actor
    from app.services.queueing import use_queue
    from db.session import tenant_session

    started = time.monotonic()
    with tenant_session(engine, tenant) as session:
        use_queue(session, queue)
        function(session, Actor.system(tenant, name="bench"), job_id)
    return started, time.monotonic()


def _floor(engine, tenant, job_id) -> float:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    from db.session import scoped_connection

    started = time.monotonic()
    with scoped_connection(engine, tenant) as connection:
        connection.execute(text("UPDATE bulk_jobs SET updated_at = now() WHERE id = :id"), {"id": job_id})
    return time.monotonic() - started


def _sends(fake) -> list[float]:  # type: ignore[no-untyped-def]
    return sorted(r.received_monotonic for r in fake.requests() if r.endpoint == "messages.create")


def _wait_until(fake, count: int, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while len(_sends(fake)) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"fewer than {count} sends in {timeout:.0f} s")
        time.sleep(0.2)


def run(database_url: str, redis_url: str, fake_process, messages: int, cap: int, patients: int = 0) -> None:  # type: ignore[no-untyped-def]
    from app.services.bulk import jobs

    fake = fake_process.remote
    fake.reset()
    concurrency = {"DELIVERY_CONCURRENCY": os.environ["BENCH_CONCURRENCY"]} if "BENCH_CONCURRENCY" in os.environ else {}
    env = _env(database_url, redis_url, fake_process.base_url, fake_process, SMS_RATE_PER_SECOND=str(cap),
               **concurrency)  # the default DELIVERY_CONCURRENCY (16) unless BENCH_CONCURRENCY says otherwise
    if patients:
        engine, tenant, job_id, queue = _bulk_to_patients(database_url, redis_url, patients)
        messages = patients
    else:
        engine, tenant, job_id, queue = _bulk(database_url, redis_url, messages)
    workers = [_worker(env, f"switch-{i}") for i in range(2)]
    try:
        _wait_until(fake, cap * 3, 60)  # sending at the cap
        _, paused = _call(engine, tenant, queue, jobs.pause, job_id)
        pause_seconds = paused - _
        time.sleep(3)
        after_pause = [t for t in _sends(fake) if t > paused]
        sent_before_resume = len(_sends(fake))
        resume_started, _resumed = _call(engine, tenant, queue, jobs.resume, job_id)
        _wait_until(fake, sent_before_resume + cap, 60)
        first_after_resume = min(t for t in _sends(fake) if t > resume_started) - resume_started
        cancel_started, cancelled = _call(engine, tenant, queue, jobs.cancel, job_id)
        time.sleep(3)
        after_cancel = [t for t in _sends(fake) if t > cancelled]
        floor = min(_floor(engine, tenant, job_id) for _ in range(5))
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
    load = os.getloadavg()
    print(f"job switch: {messages:,}-message job, 2 workers, cap {cap}/s, load {load[0]:.2f} {load[1]:.2f}")
    print(f"  pause: call returned in      {pause_seconds:7.3f} s   (floor: one UPDATE of the job {floor:.4f} s)")
    print(f"  provider requests after pause returned   {len(after_pause):5d}")
    print(f"  resume -> next provider request {first_after_resume:7.3f} s")
    print(f"  cancel: call returned in     {cancelled - cancel_started:7.3f} s")
    print(f"  provider requests after cancel returned  {len(after_cancel):5d}")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--cap", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--patients", type=int, default=0,
                        help="send to all of this many patients (prepared while sending) instead of a list")
    args = parser.parse_args()
    from tests.peers.fake_twilio import FakeTwilioProcess

    with temporary_database(prefix="bench_switch") as database_url, isolated_redis() as redis_url:
        with FakeTwilioProcess(latency_ms=args.latency_ms) as fake:
            run(database_url, redis_url, fake, args.messages, args.cap, args.patients)


if __name__ == "__main__":
    main()
