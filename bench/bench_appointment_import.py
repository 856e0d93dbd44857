"""Benchmark an appointment upload's review and commit against the raw floor (issue 20).

    python bench/bench_appointment_import.py --rows 100000

In a fresh PostgreSQL database (dropped at the end) it COPYs two clinics' patients in (the same
MRNs in both; clinic B also has appointments under the same ids), writes a CSV of N appointments
for clinic A, then measures, each beside its floor in the same run:

1. ``upload.review`` of the file (nothing written) — floor: ``pandas.read_csv`` of the same bytes
   plus one SELECT of the clinic's existing appointments' source ids;
2. ``upload.commit`` of that review (every row new; the reminders' planner runs when it is in the
   tree) — floor: one raw multi-row INSERT of the same rows (psycopg ``executemany``) into the same
   table, committed, then deleted again;
3. the same file again with 10 % of the rows moved and 2 % cancelled: review, then commit — floor:
   the raw UPDATE of the moved and cancelled rows by id.

Targets: a 100,000-row review under 30 s; a commit well under a minute. Prints the load average.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import io
import os
import time
import uuid
from typing import Any

from _support import DEFAULT_ADMIN_URL, copy_patients, temporary_database
from sqlalchemy import text

print = functools.partial(print, flush=True)  # progress shows in a log file at once
DAY = dt.date(2031, 3, 2)  # a Sunday, far ahead


def _seed(url: str, patients: int, neighbour_appointments: int) -> tuple[uuid.UUID, uuid.UUID]:
    from app.services.appointments import records
    from app.services.permissions import Actor
    from db.models import Tenant
    from db.session import make_engine, system_session, tenant_session

    engine = make_engine(url)
    a, b = uuid.uuid4(), uuid.uuid4()
    with system_session(engine) as session:
        session.add_all([Tenant(id=a, name="Bench Clinic A", slug="bench-a", settings={}),
                         Tenant(id=b, name="Bench Clinic B", slug="bench-b", settings={})])
    copy_patients(engine, a, patients)
    copy_patients(engine, b, patients)
    start = dt.datetime.combine(DAY, dt.time(8), dt.UTC)
    inputs = [records.AppointmentInput(f"S{i}", f"MRN-{i % patients}", start + dt.timedelta(minutes=i % 600))
              for i in range(neighbour_appointments)]
    with tenant_session(engine, b) as session:
        records.apply(session, Actor.system(b, name="bench"), inputs, source="api")
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return a, b


def _csv(rows: int, patients: int, *, moved: float = 0.0, cancelled: float = 0.0) -> bytes:
    lines = ["source_id,mrn,date,time,duration_minutes,department,doctor,status"]
    for i in range(rows):
        day = DAY + dt.timedelta(days=i % 30)
        minutes = 8 * 60 + (i * 5) % 600 + (15 if i % 100 < moved * 100 else 0)
        status = "cancelled" if 50 <= i % 100 < 50 + cancelled * 100 else "booked"
        lines.append(f"S{i},MRN-{i % patients},{day.isoformat()},{minutes // 60:02d}:{minutes % 60:02d},20,"
                     f"Dental,Dr. Huda,{status}")
    return ("\n".join(lines) + "\n").encode()


def _timed(fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def _review_floor(engine: Any, tenant_id: uuid.UUID, data: bytes) -> float:
    import pandas as pd

    started = time.perf_counter()
    pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    with engine.begin() as conn:
        conn.execute(text("SELECT source_id FROM appointments WHERE tenant_id = :t"), {"t": tenant_id}).all()
    return time.perf_counter() - started


def _insert_floor(engine: Any, tenant_id: uuid.UUID, rows: int) -> float:
    """The same rows, written the plainest way: one executemany INSERT (no patients looked up)."""
    with engine.begin() as conn:
        patient = conn.execute(text("SELECT id FROM patients WHERE tenant_id = :t LIMIT 1"), {"t": tenant_id}).scalar()
    start = dt.datetime.combine(DAY, dt.time(5), dt.UTC)
    params = [(uuid.uuid4(), tenant_id, patient, start + dt.timedelta(minutes=i % 600), f"F{i}") for i in range(rows)]
    raw = engine.raw_connection()
    try:
        started = time.perf_counter()
        with raw.cursor() as cur:
            cur.executemany(
                "INSERT INTO appointments (id, tenant_id, patient_id, starts_at, duration_minutes, doctor_name_en, "
                "doctor_name_ar, department, location, status, source_id, appointment_type, status_source, "
                "created_at, updated_at) VALUES (%s, %s, %s, %s, 20, 'Dr. Huda', '', 'Dental', '', 'booked', %s, "
                "'', 'upload', now(), now())", params)
        raw.commit()
        elapsed = time.perf_counter() - started
        with raw.cursor() as cur:
            cur.execute("DELETE FROM appointments WHERE tenant_id = %s AND source_id LIKE 'F%%'", (tenant_id,))
        raw.commit()
        return elapsed
    finally:
        raw.close()


def _update_floor(engine: Any, tenant_id: uuid.UUID, rows: int, share: float) -> float:
    with engine.begin() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM appointments WHERE tenant_id = :t"), {"t": tenant_id})]
    chosen = ids[: int(len(ids) * share)]
    raw = engine.raw_connection()
    try:
        started = time.perf_counter()
        with raw.cursor() as cur:
            cur.executemany("UPDATE appointments SET location = 'Room 2', updated_at = now() WHERE id = %s",
                            [(i,) for i in chosen])
        raw.rollback()
        return time.perf_counter() - started
    finally:
        raw.close()


def _round(engine: Any, tenant_id: uuid.UUID, data: bytes, name: str) -> None:
    from app.services.appointments import upload
    from app.services.permissions import Actor
    from db.session import tenant_session

    actor = Actor.system(tenant_id, name="bench")
    with tenant_session(engine, tenant_id) as session:
        reviewed, review_s = _timed(lambda: upload.review(session, actor, data, "list.csv"))
    print(f"{name}: review {review_s:.2f} s ({reviewed.to_create:,} new, {reviewed.to_change:,} changed, "
          f"{reviewed.to_cancel:,} cancelled, {reviewed.unchanged:,} unchanged, {len(reviewed.refused):,} refused); "
          f"load {os.getloadavg()[0]:.2f}")
    planning = _time_the_planner()
    started = time.perf_counter()
    with tenant_session(engine, tenant_id) as session:
        result = upload.commit(session, actor, reviewed)
    commit_s = time.perf_counter() - started
    print(f"{name}: commit {commit_s:.2f} s, of which the reminders' planner {sum(planning):.2f} s "
          f"({result.created:,} new, {result.changed:,} changed, {result.cancelled:,} cancelled); "
          f"load {os.getloadavg()[0]:.2f}")


def _time_the_planner() -> list[float]:
    """The seconds each call of the reminders' planner takes inside the commit (none when it is not there)."""
    spent: list[float] = []
    try:
        from app.services.reminders import planner
    except ImportError:
        return spent
    plan = getattr(planner.plan, "__wrapped__", planner.plan)

    @functools.wraps(plan)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return plan(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    planner.plan = timed
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with temporary_database(args.admin_url, prefix="bench_appointments") as url:
        from db.session import make_engine

        a, _ = _seed(url, args.patients, args.rows // 10)
        engine = make_engine(url)
        first = _csv(args.rows, args.patients)
        print(f"{args.rows:,} rows, {len(first) / 1024 / 1024:.1f} MB; {args.patients:,} patients in each clinic")
        print(f"floor (read_csv + one SELECT of the clinic's source ids): {_review_floor(engine, a, first):.2f} s")
        print(f"floor (raw executemany INSERT of {args.rows:,} rows): {_insert_floor(engine, a, args.rows):.2f} s")
        _round(engine, a, first, "first upload")
        with engine.begin() as conn:
            conn.execute(text("ANALYZE appointments"))
        again = _csv(args.rows, args.patients, moved=0.10, cancelled=0.02)
        print(f"floor (read_csv + one SELECT of the clinic's source ids): {_review_floor(engine, a, again):.2f} s")
        print(f"floor (raw UPDATE by id of 12 % of the rows): {_update_floor(engine, a, args.rows, 0.12):.2f} s")
        _round(engine, a, again, "same file, 10 % moved and 2 % cancelled")
        engine.dispose()
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
