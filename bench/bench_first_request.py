"""Send -> first provider request of a bulk send to 1,000,000 patients, as the user waits for it.

    python bench/bench_first_request.py [--recipients 1000000] [--repeats 3]

In a fresh PostgreSQL database (dropped at the end) it COPYs ``--recipients`` patients into clinic
A and one patient into a neighbouring clinic B (the same name and phone number as A's first), and
starts two real worker processes (``python -m worker``: RQ on Redis, the sweeper) against the
loopback Twilio (a separate process answering after 200 ms, cap 100/s). Then, ``--repeats`` times:

1. the floor: the same Send for clinic B's one patient (``{"kind": "all"}``, so the same path at
   the size of one: the fixed cost of confirm, the queue, the expansion job and a delivery job);
2. the Send of all of clinic A, as the wizard's Send button calls it (``bulk.wizard.confirm`` as an
   admin in one unit of work of the clinic, its jobs queued after the commit).

Each is timed from the call to the first ``messages.create`` the fake receives (its receive time
is CLOCK_MONOTONIC, as this process's), and from the call to its return to the page. The workers
stay up throughout, as a deployment's do (two unmeasured sends warm them first); after each
repeat A's job is cancelled (the progress panel's Cancel), the workers go idle and the bulk jobs
and messages are emptied, so every repeat starts alike. Prints each repeat, the median and the
max, with the load average.
Target (issue 18): <= 2 s at 1,000,000 recipients.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

from _support import DEFAULT_ADMIN_URL, ROOT, copy_patients, isolated_redis, temporary_database
from bench_bulk_expansion import _admin
from bench_delivery import _env
from sqlalchemy import text

print = functools.partial(print, flush=True)  # progress shows in a log file at once
BODY = "The clinic is closed on Friday. {{ clinic_name }}"
QUEUE = "bench"


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} {five:.2f}"


def _seed(url: str, count: int) -> tuple[uuid.UUID, uuid.UUID, float]:
    """Clinic A with ``count`` patients, its neighbour B with one (A's first patient's name and number)."""
    from app.services import tenants
    from db.session import make_engine, system_session

    engine = make_engine(url)
    with system_session(engine) as session:
        clinic_a = tenants.create_tenant(session, name="Bench Clinic A", slug="bench-a").id
        clinic_b = tenants.create_tenant(session, name="Bench Clinic B", slug="bench-b").id
    started = time.perf_counter()
    copy_patients(engine, clinic_a, count)
    copy_patients(engine, clinic_b, 1)
    seeded = time.perf_counter() - started
    with engine.begin() as conn:
        conn.execute(text("ANALYZE patients"))
    engine.dispose()
    return clinic_a, clinic_b, seeded


def _send(engine: Any, queue: Any, clinic: uuid.UUID, admin: Any, size: int) -> tuple[float, float, uuid.UUID]:
    """Press Send as the page does; (monotonic time of the call, of its return, the job's id)."""
    from app.services.bulk import wizard
    from app.services.queueing import use_queue
    from db.enums import Channel
    from db.session import tenant_session

    draft = wizard.Draft(idempotency_key=wizard.new_draft_key(), audience={"kind": "all"}, channel=Channel.SMS,
                         body_en=BODY)
    started = time.monotonic()
    with tenant_session(engine, clinic) as session:  # the page's unit of work (app.ui.session.call)
        use_queue(session, queue)
        created = wizard.confirm(session, admin, draft, typed_count=size)
    return started, time.monotonic(), created.bulk_job_id


def _first_request(fake: Any, since: int, timeout: float = 120.0) -> tuple[float, str]:
    """The receive time and the ``To`` of the first message create after request number ``since``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sends = [r for r in fake.requests(since) if r.endpoint == "messages.create"]
        if sends:
            first = min(sends, key=lambda r: r.received_monotonic)
            return first.received_monotonic, first.to or ""
        time.sleep(0.01)
    raise SystemExit(f"no provider request within {timeout:.0f} s")


def _worker(env: dict[str, str], name: str, log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "worker", "--name", name], cwd=ROOT, env=env,
                            stdout=log, stderr=log)


def _wait_ready(workers: list[subprocess.Popen[bytes]], redis_url: str, log: str, timeout: float = 60.0) -> None:
    """Until every worker has registered with RQ (it is listening on the queue)."""
    import redis
    from rq import Worker

    connection = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    while len(Worker.all(connection=connection)) < len(workers):
        if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
            raise SystemExit(f"the workers did not start (their output: {log})")
        time.sleep(0.1)


def _wait_idle(redis_url: str, timeout: float = 300.0) -> None:
    """Until the queue is empty and no worker is running a job."""
    import redis
    from rq import Queue, Worker

    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE, connection=connection)
    deadline = time.monotonic() + timeout
    while len(queue) or any(w.get_state() == "busy" for w in Worker.all(connection=connection)):
        if time.monotonic() > deadline:
            raise SystemExit("the workers are still busy")
        time.sleep(0.2)


def _empty(engine: Any) -> None:
    """No bulk jobs and no messages, so every repeat starts alike. A sweep pass still at work on the
    cancelled job (settling its messages) is cancelled, not its worker: the pass logs it and goes on."""
    from sqlalchemy.exc import OperationalError

    for _ in range(100):
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = "
                              "current_database() AND pid <> pg_backend_pid() AND state <> 'idle'"))
        try:
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '1s'"))
                conn.execute(text("TRUNCATE bulk_jobs, messages CASCADE"))
            break
        except OperationalError:
            continue
    with engine.begin() as conn:
        conn.execute(text("CHECKPOINT"))


def _measure(engine: Any, queue: Any, fake: Any, clinic: uuid.UUID, admin: Any, size: int,
             ) -> tuple[float, float, str, uuid.UUID]:
    """(seconds to the first provider request, seconds until the call returned, its ``To``, the job)."""
    since = len(fake.requests())
    started, returned, job_id = _send(engine, queue, clinic, admin, size)
    first, to = _first_request(fake, since)
    return first - started, returned - started, to, job_id


def run(url: str, redis_url: str, fake_process: Any, clinics: tuple[uuid.UUID, uuid.UUID], admins: tuple[Any, Any],
        recipients: int, repeats: int) -> list[dict[str, Any]]:
    import redis

    from app.delivery.queue import RQJobQueue
    from app.services.bulk import jobs
    from app.services.queueing import use_queue
    from db.session import make_engine, tenant_session

    fake = fake_process.remote
    engine = make_engine(url)
    queue = RQJobQueue(redis.Redis.from_url(redis_url), QUEUE)
    env = _env(url, redis_url, fake_process.base_url, fake_process, SMS_RATE_PER_SECOND="100",
               SWEEP_INTERVAL_SECONDS="5")  # the default sweep interval (bench_delivery's is 2 s)
    log = tempfile.NamedTemporaryFile(prefix="bench_first_workers_", suffix=".log", delete=False)
    workers = [_worker(env, f"first-{i}", log) for i in range(2)]
    runs: list[dict[str, Any]] = []
    try:
        _wait_ready(workers, redis_url, log.name)
        for _ in range(2):  # warm: the workers' first jobs import and connect (both do both kinds)
            _measure(engine, queue, fake, clinics[1], admins[1], 1)
            _wait_idle(redis_url)
        _empty(engine)
        for _ in range(repeats):
            result: dict[str, Any] = {}
            for label, clinic, admin, size in (("floor", clinics[1], admins[1], 1),
                                               ("send", clinics[0], admins[0], recipients)):
                first, returned, to, job_id = _measure(engine, queue, fake, clinic, admin, size)
                result |= {f"{label}_first": first, f"{label}_returned": returned, f"{label}_to": to}
                if label == "send":
                    with tenant_session(engine, clinic) as session:  # the progress panel's Cancel
                        use_queue(session, queue)
                        jobs.cancel(session, admin, job_id)
                _wait_idle(redis_url)
            result["load"] = _load()
            _empty(engine)
            runs.append(result)
            print(f"repeat {len(runs)}: Send -> first provider request {result['send_first']:.3f} s "
                  f"(call returned after {result['send_returned']:.3f} s); floor, 1 recipient: "
                  f"{result['floor_first']:.3f} s (returned after {result['floor_returned']:.3f} s); "
                  f"{result['load']}")
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(60)
        log.close()
        engine.dispose()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--database-url", default=DEFAULT_ADMIN_URL)
    args = parser.parse_args()
    from tests.peers.fake_twilio import FakeTwilioProcess

    with temporary_database(args.database_url, prefix="bench_first") as url, \
            isolated_redis() as redis_url, FakeTwilioProcess(latency_ms=200) as fake:
        from db.session import make_engine

        clinic_a, clinic_b, seeded = _seed(url, args.recipients)
        print(f"seeded {args.recipients:,} patients in clinic A and 1 in clinic B by COPY in {seeded:.1f} s")
        engine = make_engine(url)
        admins = (_admin(engine, clinic_a), _admin(engine, clinic_b))
        engine.dispose()
        runs = run(url, redis_url, fake, (clinic_a, clinic_b), admins, args.recipients, args.repeats)
        print(f"first provider request to {runs[0]['send_to']} (A) and {runs[0]['floor_to']} (B, the floor)")

    def summary(key: str) -> str:
        values = [r[key] for r in runs]
        return f"median {statistics.median(values):.3f} s, max {max(values):.3f} s"

    print(f"Send -> first provider request, {args.recipients:,} recipients: {summary('send_first')} "
          f"(target <= 2 s); call returned: {summary('send_returned')}")
    print(f"floor, the same Send to 1 recipient: {summary('floor_first')}; call returned: "
          f"{summary('floor_returned')}")
    ratio = statistics.median(r["send_first"] for r in runs) / statistics.median(r["floor_first"] for r in runs)
    print(f"ratio {ratio:.2f}x; {_load()}")
    print("target met" if max(r["send_first"] for r in runs) <= 2 else "TARGET NOT MET")


if __name__ == "__main__":
    main()
