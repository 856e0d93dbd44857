"""Delivery throughput against the loopback Twilio (separate processes, real Redis and PostgreSQL).

    python bench/bench_delivery.py [--messages 3000] [--cap 100] [--latency-ms 200]

1. Paced: the fake answers every request after ``--latency-ms``; two worker processes share a
   cap of ``--cap`` messages/second (``SMS_RATE_PER_SECOND``). Reported from the fake's receive
   times: the sustained rate (first to last request) and the most requests in any one-second
   window, which must never exceed the cap.
2. Unpaced: one worker, no latency, no cap: messages per second per worker process, next to
   its floor from the same run: the same number of message creates sent straight to the fake at
   the same concurrency (16), with no database and no queue (a rate the worker cannot beat). The
   same RQ worker running no-op jobs (``worker.jobs.noop``) is printed too: the cost of a job.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from _support import ROOT, isolated_redis, temporary_database


def _worker(env: dict[str, str], name: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "worker", "--name", name, *extra], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _env(database_url: str, redis_url: str, fake_url: str, fake, **extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "RQ_QUEUE": "bench",
            "SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": fake.account_sid, "TWILIO_AUTH_TOKEN": fake.auth_token,
            "TWILIO_FROM_NUMBER": "+15005550006", "TWILIO_API_BASE_URL": fake_url,
            "PUBLIC_BASE_URL": "https://clinic.example", "SWEEP_INTERVAL_SECONDS": "2", **extra}


def _bulk(database_url: str, redis_url: str, count: int, start: int) -> None:
    from dataclasses import replace

    import redis

    from app.delivery.queue import RQJobQueue
    from app.delivery.runtime import build_runtime
    from app.services import tenants
    from app.services.messaging import MessagingService
    from db.session import make_engine, system_session

    engine = make_engine(database_url)
    with system_session(engine) as session:
        tenant = tenants.create_tenant(session, name=f"Bench {start}", slug=f"bench-{start}").id
    numbers = [f"+96650{n:07d}" for n in range(start, start + count)]
    runtime = replace(build_runtime(engine=engine), queue=RQJobQueue(redis.Redis.from_url(redis_url), "bench"))
    MessagingService(runtime).send_bulk_messages(
        recipients=numbers, message="Your appointment is tomorrow at 10:00", channel="SMS", tenant_id=tenant)
    engine.dispose()


def _wait_for(database_url: str, fake, count: int, timeout: float) -> list:  # type: ignore[no-untyped-def,type-arg]
    """Wait (watching the database, not the fake, so as not to disturb its clock) for every send."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    deadline = time.monotonic() + timeout
    sent = 0
    while sent < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {sent} of {count} messages were sent in {timeout:.0f} s")
        time.sleep(2.0)
        with engine.connect() as conn:
            sent = conn.execute(text("SELECT count(*) FROM messages WHERE status = 'sent'")).scalar_one()
    engine.dispose()
    return [r for r in fake.requests() if r.endpoint == "messages.create"]


def paced(database_url: str, redis_url: str, fake_process, messages: int, cap: int) -> None:  # type: ignore[no-untyped-def]
    fake = fake_process.remote
    fake.reset()
    env = _env(database_url, redis_url, fake_process.base_url, fake_process, SMS_RATE_PER_SECOND=str(cap),
               DELIVERY_CONCURRENCY="24")
    _bulk(database_url, redis_url, messages, 1_000_000)
    workers = [_worker(env, f"paced-{i}") for i in range(2)]
    try:
        recorded = _wait_for(database_url, fake, messages, messages / cap * 3 + 60)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
    from tests.peers.fake_twilio import count_by_to, max_rate

    sends = sorted(r.received_monotonic for r in recorded)
    span = sends[-1] - sends[0]
    sustained = (len(sends) - 1) / span
    peak = max_rate(recorded)
    per_to = count_by_to(recorded)
    print(f"paced: {len(sends):,} messages, 2 workers, cap {cap}/s")
    print(f"  sustained rate      {sustained:8.1f} msg/s  ({sustained / cap:.3f} x cap)")
    print(f"  busiest 1 s window  {peak:8d} msg     (cap {cap})")
    print(f"  duplicates          {sum(v - 1 for v in per_to.values()):8d}")
    if os.environ.get("BENCH_DEBUG"):
        buckets: dict[int, int] = {}
        for t in sends:
            buckets[int((t - sends[0]) * 4)] = buckets.get(int((t - sends[0]) * 4), 0) + 1
        print("  per 250 ms:", [buckets.get(i, 0) for i in range(max(buckets) + 1)])


def unpaced(database_url: str, redis_url: str, fake_process, messages: int) -> None:  # type: ignore[no-untyped-def]
    import redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    fake = fake_process.remote
    fake.reset()
    env = _env(database_url, redis_url, fake_process.base_url, fake_process, SMS_RATE_PER_SECOND="100000",
               DELIVERY_CONCURRENCY="16")
    # the floor: the same worker running no-op jobs
    queue = Queue("bench", connection=redis.Redis.from_url(redis_url), serializer=JSONSerializer)
    jobs = 2000
    queue.enqueue_many([Queue.prepare_data("worker.jobs.noop", args=()) for _ in range(jobs)])
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "worker", "--burst", "--no-sweeper"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    noop_rate = jobs / (time.perf_counter() - started)
    from tests.peers.loadgen import blast

    raw = blast(fake_process.base_url, messages, 16, fake.account_sid, fake.auth_token)  # the floor, in messages
    fake.reset()
    _bulk(database_url, redis_url, messages, 2_000_000)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "worker", "--burst", "--no-sweeper"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    sent = len(fake.sends())
    rate = sent / elapsed
    print(f"unpaced: one worker process, no latency, no cap ({sent:,} messages), load {os.getloadavg()[0]:.2f}")
    print(f"  messages per second {rate:8.1f}  (including worker start-up)")
    print(f"  floor               {raw.rate:8.1f}  (the same creates straight to the fake, concurrency 16: "
          f"{rate / raw.rate:.2f} x)")
    print(f"  no-op RQ jobs/s     {noop_rate:8.1f}  (same worker, same Redis: what one job costs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--cap", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=200)
    args = parser.parse_args()
    from tests.peers.fake_twilio import FakeTwilioProcess

    with temporary_database(prefix="bench_delivery") as database_url, isolated_redis() as redis_url:
        with FakeTwilioProcess(latency_ms=args.latency_ms) as fake:
            paced(database_url, redis_url, fake, args.messages, args.cap)
        if not os.environ.get("BENCH_PACED_ONLY"):
            with FakeTwilioProcess(latency_ms=0) as fake:
                unpaced(database_url, redis_url, fake, args.messages)


if __name__ == "__main__":
    main()
