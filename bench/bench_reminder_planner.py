"""Benchmark the reminders' planner against the raw floor (issue 20).

    python bench/bench_reminder_planner.py --per-day 2000 --days 7

In a fresh PostgreSQL database (dropped at the end) two clinics get the same patients (COPY), three
reminder rules each (WhatsApp 48 h before, moved earlier off weekends and holidays; SMS 3 h before,
moved later; e-mail 24 h before) and ``per-day`` appointments a day for the next ``days`` days
(COPY, 08:00-20:00 clinic time). Then, each beside its floor in the same run:

1. the first full pass of clinic A (``planner.plan(session)``: every upcoming appointment x every
   rule, placed by the Saudi calendar) — floor: one raw ``INSERT ... SELECT`` of the same reminder
   rows (appointment x rule, due = start - offset, no calendar) into a temporary table with the
   same columns and unique index;
2. a day's changes: the ``per-day`` appointments of one day moved by 30 minutes, then
   ``planner.plan(session, appointment_ids=...)`` over them (the target: under 1 s) — floor: one raw
   ``UPDATE ... FROM`` of those appointments' reminders' due times (no calendar);
3. the same ids planned again (nothing changed: reads only), and a day's cancellations.

Clinic B's appointments are planned too, so every read runs beside another clinic's rows. Prints
the load average (the machine may be shared: read the times beside it).
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
from zoneinfo import ZoneInfo

from _support import DEFAULT_ADMIN_URL, copy_patients, temporary_database
from sqlalchemy import text

print = functools.partial(print, flush=True)  # progress shows in a log file at once
RIYADH = ZoneInfo("Asia/Riyadh")
BODY = "Hi {{ patient_name }}, your appointment is on {{ appointment_date }} at {{ appointment_time }}."


def _load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def _clinic(engine: Any, slug: str, patients: int) -> uuid.UUID:
    """A clinic with its patients, three templates and three rules (planned with no appointments yet)."""
    from app.services import templates, tenants
    from app.services.permissions import Actor
    from app.services.reminders import rules
    from db.enums import Channel, ReminderShift
    from db.models import MessageTemplate
    from db.session import system_session, tenant_session

    with system_session(engine) as session:
        tenant = tenants.create_tenant(session, name=slug.title(), slug=slug).id
    copy_patients(engine, tenant, patients)
    actor = Actor.system(tenant, name="bench")
    with tenant_session(engine, tenant) as session:
        ids = {channel: templates.create_template(session, actor, code=f"r_{channel.value}", name=channel.label,
                                                  channel=channel, body_en=BODY,
                                                  subject_en="Your appointment" if channel == Channel.EMAIL else "").id
               for channel in Channel}
        whatsapp = session.get(MessageTemplate, ids[Channel.WHATSAPP])
        whatsapp.whatsapp_content_sid, whatsapp.whatsapp_approval_status = "HX" + "0" * 32, "approved"
        session.flush()
        for name, channel, minutes, shift in (("WhatsApp 48 h", Channel.WHATSAPP, 48 * 60, ReminderShift.EARLIER),
                                              ("SMS 3 h", Channel.SMS, 180, ReminderShift.LATER),
                                              ("E-mail 24 h", Channel.EMAIL, 24 * 60, ReminderShift.EARLIER)):
            rules.create_rule(session, actor, rules.RuleInput(name=name, channel=channel, template_id=ids[channel],
                                                              offset_minutes=minutes, shift=shift))
    return tenant


def _copy_appointments(engine: Any, tenant_id: uuid.UUID, first_day: dt.date, days: int, per_day: int) -> None:
    with engine.begin() as conn:
        patients = [r[0] for r in conn.execute(text("SELECT id FROM patients WHERE tenant_id = :t"), {"t": tenant_id})]
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur, cur.copy(
                "COPY appointments (id, tenant_id, patient_id, starts_at, duration_minutes, doctor_name_en, "
                "doctor_name_ar, department, location, status, source_id, appointment_type, status_source, "
                "created_at, updated_at) FROM STDIN") as copy:
            block = io.StringIO()
            for day in range(days):
                date = first_day + dt.timedelta(days=day)
                for i in range(per_day):
                    local = dt.datetime.combine(date, dt.time(8), RIYADH) + dt.timedelta(minutes=(i * 720) // per_day)
                    block.write(f"{uuid.uuid4()}\t{tenant_id}\t{patients[(day * per_day + i) % len(patients)]}\t"
                                f"{local.astimezone(dt.UTC).isoformat()}\t20\tDr. Huda\t\tDental\t\tbooked\t"
                                f"S{day}-{i}\t\tapi\t2026-01-01 00:00:00+00\t2026-01-01 00:00:00+00\n")
            copy.write(block.getvalue())
        raw.commit()
    finally:
        raw.close()


def _timed(fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def _plan(engine: Any, tenant_id: uuid.UUID, ids: list[uuid.UUID] | None, now: dt.datetime) -> tuple[Any, float]:
    from app.services.reminders import planner
    from db.session import tenant_session

    started = time.perf_counter()
    with tenant_session(engine, tenant_id) as session:
        result = planner.plan(session, appointment_ids=ids, now=now)
    return result, time.perf_counter() - started


def _insert_floor(engine: Any, tenant_id: uuid.UUID) -> tuple[int, float]:
    with engine.begin() as conn:
        conn.execute(text("CREATE TEMP TABLE floor_reminders (LIKE appointment_reminders INCLUDING DEFAULTS "
                          "INCLUDING INDEXES) ON COMMIT DROP"))
        started = time.perf_counter()
        count = conn.execute(text(
            "INSERT INTO floor_reminders (id, tenant_id, appointment_id, rule_id, rule_revision, status, due_at, "
            "moved_reason, status_reason, planned_at) "
            "SELECT gen_random_uuid(), a.tenant_id, a.id, r.id, r.revision, 'pending', "
            "a.starts_at - make_interval(mins => r.offset_minutes), '', '', now() "
            "FROM appointments a JOIN reminder_rules r ON r.tenant_id = a.tenant_id AND r.is_active "
            "WHERE a.tenant_id = :t AND a.status IN ('booked', 'confirmed') AND a.starts_at > now()"),
            {"t": tenant_id}).rowcount
        return count, time.perf_counter() - started


def _update_floor(engine: Any, tenant_id: uuid.UUID, ids: list[uuid.UUID]) -> tuple[int, float]:
    with engine.connect() as conn:
        started = time.perf_counter()
        count = conn.execute(text(
            "UPDATE appointment_reminders ar SET due_at = a.starts_at - make_interval(mins => r.offset_minutes), "
            "planned_at = now() FROM appointments a, reminder_rules r "
            "WHERE ar.appointment_id = a.id AND ar.rule_id = r.id AND ar.tenant_id = :t AND a.id = ANY(:ids)"),
            {"t": tenant_id, "ids": ids}).rowcount
        elapsed = time.perf_counter() - started
        conn.rollback()
        return count, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-day", type=int, default=2000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with temporary_database(args.admin_url, prefix="bench_reminders") as url:
        from db.session import make_engine

        engine = make_engine(url)
        a, b = _clinic(engine, "bench-a", args.patients), _clinic(engine, "bench-b", args.patients)
        now = dt.datetime.now(dt.UTC)
        tomorrow = now.astimezone(RIYADH).date() + dt.timedelta(days=1)
        for clinic in (a, b):
            _copy_appointments(engine, clinic, tomorrow, args.days, args.per_day)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        total = args.per_day * args.days
        print(f"two clinics, {total:,} appointments each over {args.days} days, 3 rules each; {_load()}")

        rows, floor_s = _insert_floor(engine, a)
        print(f"floor: raw INSERT ... SELECT of {rows:,} reminder rows (no calendar): {floor_s:.2f} s")
        result, first_s = _plan(engine, a, None, now)
        print(f"first full pass of clinic A: {first_s:.2f} s ({result.planned:,} planned, {result.skipped:,} skipped)"
              f"; {_load()}")
        _, other_s = _plan(engine, b, None, now)
        print(f"first full pass of clinic B: {other_s:.2f} s; {_load()}")
        with engine.begin() as conn:
            conn.execute(text("ANALYZE appointment_reminders"))

        third = tomorrow + dt.timedelta(days=min(2, args.days - 1))
        with engine.begin() as conn:
            ids = [r[0] for r in conn.execute(text(
                "UPDATE appointments SET starts_at = starts_at + interval '30 minutes', updated_at = now() "
                "WHERE tenant_id = :t AND source_id LIKE :day RETURNING id"),
                {"t": a, "day": f"S{(third - tomorrow).days}-%"})]
        rows, floor_s = _update_floor(engine, a, ids)
        print(f"floor: raw UPDATE ... FROM of the {rows:,} reminders of one day's {len(ids):,} moved "
              f"appointments (no calendar): {floor_s:.2f} s")
        for attempt in range(3):
            if attempt:  # move them again, so each pass has work
                with engine.begin() as conn:
                    conn.execute(text("UPDATE appointments SET starts_at = starts_at + interval '5 minutes', "
                                      "updated_at = now() WHERE id = ANY(:ids)"), {"ids": ids})
            result, day_s = _plan(engine, a, ids, now)
            print(f"a day's changes ({len(ids):,} moved appointments): plan {day_s:.3f} s "
                  f"({result.moved:,} moved, {result.planned:,} planned, {result.skipped:,} skipped); {_load()}")
        _, again_s = _plan(engine, a, ids, now)
        print(f"the same {len(ids):,} again (nothing changed): {again_s:.3f} s; {_load()}")
        with engine.begin() as conn:
            conn.execute(text("UPDATE appointments SET status = 'cancelled', updated_at = now() WHERE id = ANY(:ids)"),
                         {"ids": ids})
        result, cancel_s = _plan(engine, a, ids, now)
        print(f"a day's cancellations ({len(ids):,}): plan {cancel_s:.3f} s ({result.cancelled:,} cancelled); "
              f"{_load()}")
        engine.dispose()
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
