"""Benchmark the worker's expansion of a bulk job into message rows, against the raw floor.

    python bench/bench_bulk_expansion.py --recipients 1000000

In a fresh PostgreSQL database (dropped at the end) it COPYs N patients in, then measures:

1. the floor: one plain ``INSERT INTO messages ... SELECT ... FROM patients`` of the same N rows
   (constant body, no preferences join, no CASEs), indexes in place, committed;
2. the expansion as the worker runs it (``bulk.expansion.expand``: the rows, ``ANALYZE`` when
   many; each chunk queued onto RQ in Redis as it commits), in a
   separate process so its peak memory (max RSS) is its own. The text names only the clinic, so
   the rows are one ``INSERT ... SELECT``; with ``--personal`` it names the patient, so each row
   is rendered in Python and the rows are written by COPY.

Prints seconds, the ratio to the floor, peak memory, delivery jobs enqueued and the largest job,
then the time of the wizard's review (dry run) of the same audience; ``--controls`` then times
pause, resume and cancel of the expanded job.
Targets (issue 18): the first delivery job queued within 2 s, at least 20,000 rows/s sustained and
within 1.6x of the floor, under 300 MB, <= 1 job per 500 messages.
``--breakdown`` then shows the floor's foreign-key checks one by one (``EXPLAIN ANALYZE``) and times it
without the foreign keys, the secondary indexes and the key.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import resource
import time
import uuid
from typing import Any

from _support import DEFAULT_ADMIN_URL, copy_patients, temporary_database
from sqlalchemy import text

print = functools.partial(print, flush=True)  # progress shows in a log file at once
BODY = "The clinic is closed on Friday. {{ clinic_name }}"
PERSONAL_BODY = "Dear {{ patient_first_name }}, the clinic is closed on Friday. {{ clinic_name }}"


def _seed(url: str, count: int, body: str) -> tuple[uuid.UUID, uuid.UUID, float]:
    from db.enums import BulkJobStatus, Channel
    from db.models import BulkJob, Tenant
    from db.session import make_engine, system_session

    engine = make_engine(url)
    tenant_id = uuid.uuid4()
    with system_session(engine) as session:
        session.add(Tenant(id=tenant_id, name="Bench Clinic", slug="bench", settings={}))
    started = time.perf_counter()
    copy_patients(engine, tenant_id, count)
    seeded = time.perf_counter() - started
    job_id = uuid.uuid4()
    with system_session(engine) as session:
        session.add(BulkJob(id=job_id, tenant_id=tenant_id, name="bench", channel=Channel.SMS,
                            status=BulkJobStatus.EXPANDING, audience={"kind": "all"}, custom_body_en=body,
                            custom_body_ar="", total_recipients=count))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE patients"))  # settled, as a clinic's patients are (autovacuum)
    engine.dispose()
    return tenant_id, job_id, seeded


FLOOR_INSERT = (
    "INSERT INTO messages (id, tenant_id, patient_id, bulk_job_id, channel, message_class, recipient, "
    "language, subject, body, variables, status, status_reason, segments, is_test, urgent, attempts, "
    "queued_at, enqueued_at, created_at, updated_at) "
    "SELECT gen_random_uuid(), tenant_id, id, :job, 'sms', 'service', phone_e164, language, '', "
    "'The clinic is closed on Friday. Bench Clinic', '{}', 'queued', '', 1, false, false, 0, now(), "
    "now(), now(), now() FROM patients WHERE tenant_id = :tenant")


def _empty_messages(engine: Any) -> None:
    """No message rows and nothing left to write out, so the next timing starts alike."""
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE messages CASCADE"))
        conn.execute(text("CHECKPOINT"))


def _floor(url: str, tenant_id: uuid.UUID, job_id: uuid.UUID) -> float:
    from db.session import make_engine

    engine = make_engine(url)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text(FLOOR_INSERT), {"job": job_id, "tenant": tenant_id})
    elapsed = time.perf_counter() - started
    _empty_messages(engine)
    engine.dispose()
    return elapsed


def _breakdown(url: str, tenant_id: uuid.UUID, job_id: uuid.UUID) -> None:
    """Where the floor's time goes: the same INSERT again after dropping the foreign keys, then the
    secondary indexes, then the primary key (this throw-away database only)."""
    from db.session import make_engine

    engine = make_engine(url)
    _empty_messages(engine)  # the expansion's rows
    with engine.connect() as conn:  # the same INSERT under EXPLAIN ANALYZE, rolled back
        plan = conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {FLOOR_INSERT}"),
                            {"job": job_id, "tenant": tenant_id}).scalar_one()
        conn.rollback()
    root = plan[0]
    print(f"floor under EXPLAIN ANALYZE: {root['Execution Time'] / 1000:.2f} s, of which the insert itself "
          f"(heap and indexes) {root['Plan']['Actual Total Time'] / 1000:.2f} s and the foreign-key checks:")
    for trigger in root.get("Triggers", []):
        print(f"  {trigger.get('Constraint Name', trigger['Trigger Name']):62} {trigger['Time'] / 1000:6.2f} s")
    _empty_messages(engine)
    steps = [("without the 7 foreign keys", "SELECT format('ALTER TABLE messages DROP CONSTRAINT %I', conname) "
              "FROM pg_constraint WHERE conrelid = 'messages'::regclass AND contype = 'f'"),
             ("and without the secondary indexes", "SELECT format('DROP INDEX %I', indexname) FROM pg_indexes "
              "WHERE tablename = 'messages' AND indexname <> 'pk_messages'"),
             ("and without the primary key (bare heap)",
              "SELECT 'ALTER TABLE messages DROP CONSTRAINT pk_messages CASCADE'")]
    for label, ddl in steps:
        with engine.begin() as conn:
            for (statement,) in conn.execute(text(ddl)).all():
                conn.execute(text(statement))
        engine.dispose()
        print(f"floor {label}: {_floor(url, tenant_id, job_id):.2f} s")


def _admin(engine: Any, tenant_id: uuid.UUID) -> Any:
    from app.services import staff
    from app.services.permissions import Actor
    from db.enums import Role
    from db.session import tenant_session

    with tenant_session(engine, tenant_id) as session:
        user = staff.create_user(session, Actor.system(tenant_id, name="command line"),
                                 username=f"bench-{uuid.uuid4().hex[:8]}",
                                 password=uuid.uuid4().hex, role=Role.ADMIN)
        return Actor(user_id=user.id, tenant_id=tenant_id, username=user.username, display_name=user.display_name,
                     role=Role.ADMIN)


def _review(url: str, tenant_id: uuid.UUID, body: str) -> float:
    """Seconds for the wizard's review (dry run) of the same audience and text, as the page calls it."""
    from app.services.bulk import wizard
    from db.enums import Channel
    from db.session import make_engine, tenant_session

    engine = make_engine(url)
    admin = _admin(engine, tenant_id)
    draft = wizard.Draft(idempotency_key="bench", audience={"kind": "all"}, channel=Channel.SMS, body_en=body)
    started = time.perf_counter()
    with tenant_session(engine, tenant_id) as session:
        wizard.dry_run(session, admin, draft)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def _controls(url: str, tenant_id: uuid.UUID, job_id: uuid.UUID) -> None:
    """Seconds for pause, resume and cancel of the expanded job, as the progress panel calls them."""
    from app.services.bulk import jobs
    from db.session import make_engine, tenant_session

    engine = make_engine(url)
    admin = _admin(engine, tenant_id)
    for action in ("pause", "resume", "cancel"):
        started = time.perf_counter()
        with tenant_session(engine, tenant_id) as session:
            outcome = getattr(jobs, action)(session, admin, job_id)
        moved = outcome if isinstance(outcome, int) else sum(len(ids) for _, ids in outcome)
        print(f"{action}: {moved:,} messages in {time.perf_counter() - started:.2f} s")
    engine.dispose()


def _expand(url: str, redis_url: str, queue_name: str, job_id: uuid.UUID, out: multiprocessing.Queue) -> None:
    import redis

    from app.config import Settings
    from app.delivery.queue import RQJobQueue
    from app.delivery.ratelimit import LocalRateLimiter
    from app.delivery.runtime import Runtime
    from app.providers.base import ProviderSet
    from app.services.bulk import expansion
    from db.session import make_engine

    engine = make_engine(url)
    connection = redis.Redis.from_url(redis_url)
    queue = RQJobQueue(connection, queue_name)
    sizes: list[int] = []
    first_queued: list[float] = []
    real_enqueue = queue.enqueue_batches

    def counting(batches):  # type: ignore[no-untyped-def]
        sizes.extend(len(ids) for _, ids in batches)
        real_enqueue(batches)
        if not first_queued:
            first_queued.append(time.perf_counter())

    queue.enqueue_batches = counting  # type: ignore[method-assign]
    runtime = Runtime(engine, Settings(database_url=url), ProviderSet(), LocalRateLimiter(), queue)
    marks: dict[str, float] = {}  # the worker's own job (expand), with the time each step starts

    def marking(step: str, real: Any) -> Any:
        def marked(*args: Any) -> Any:
            marks[step] = time.perf_counter()
            return real(*args)
        return marked

    expansion._refresh_statistics = marking("_refresh_statistics", expansion._refresh_statistics)
    started = time.perf_counter()
    outcome = expansion.expand(runtime, job_id)
    ended = time.perf_counter()
    total = ended - started
    written = marks.get("_refresh_statistics", ended) - started  # every chunk written and queued
    analyzed = ended - marks.get("_refresh_statistics", ended)
    jobs = outcome["enqueued_jobs"]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.queue.empty()
    connection.delete(queue.queue.key)
    out.put({"written_s": written, "total_s": total, "analyze_s": analyzed, "rows": outcome["written"], "jobs": jobs,
             "largest_job": max(sizes) if sizes else 0, "peak_mb": peak_mb,
             "first_queued_s": first_queued[0] - started if first_queued else float("nan")})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--personal", action="store_true",
                        help="a text with the patient's name: rendered per recipient in Python, written by COPY")
    parser.add_argument("--controls", action="store_true", help="then time pause, resume and cancel of the job")
    parser.add_argument("--breakdown", action="store_true",
                        help="afterwards, time the floor again without foreign keys, indexes, primary key")
    args = parser.parse_args()
    with temporary_database(args.database_url, prefix="bench_bulk") as url:
        body = PERSONAL_BODY if args.personal else BODY
        tenant_id, job_id, seeded = _seed(url, args.recipients, body)
        print(f"seeded {args.recipients:,} patients by COPY in {seeded:.1f} s")
        floor = _floor(url, tenant_id, job_id)
        print(f"floor: plain INSERT ... SELECT of {args.recipients:,} message rows: {floor:.2f} s")
        out: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
        child = multiprocessing.get_context("spawn").Process(
            target=_expand, args=(url, args.redis_url, f"bench-bulk-{uuid.uuid4().hex[:8]}", job_id, out))
        child.start()
        result = out.get()
        child.join()
        print(f"expansion: first delivery job queued after {result['first_queued_s']:.2f} s; "
              f"{result['rows']:,} rows written and {result['jobs']:,} delivery jobs queued in chunks in "
              f"{result['written_s']:.2f} s ({result['rows'] / result['written_s']:,.0f} rows/s); with ANALYZE "
              f"({result['analyze_s']:.2f} s): {result['total_s']:.2f} s; load {os.getloadavg()[0]:.2f}")
        print(f"ratio to floor (rows): {result['written_s'] / floor:.2f}x; (with enqueue): "
              f"{result['total_s'] / floor:.2f}x")
        print(f"peak memory of the expanding process: {result['peak_mb']:.0f} MB; largest job "
              f"{result['largest_job']} messages; jobs per 500 messages: "
              f"{result['jobs'] / max(1, result['rows'] / 500):.3f}")
        ok = (result["first_queued_s"] <= 2 and result["rows"] / result["written_s"] >= 20_000
              and result["written_s"] / floor <= 1.6 and result["peak_mb"] < 300 and result["largest_job"] <= 500)
        print("targets met" if ok else "TARGETS NOT MET")
        # after the expanding child: Linux keeps a parent's peak memory in a child it spawns
        print(f"review (dry run) of the {args.recipients:,} recipients: {_review(url, tenant_id, body):.2f} s")
        if args.controls:
            _controls(url, tenant_id, job_id)
        if args.breakdown:
            _breakdown(url, tenant_id, job_id)


if __name__ == "__main__":
    main()
