"""Benchmark the message explorer on a big PostgreSQL database (e.g. a copy of the 10M-message demo).

    python bench/bench_explorer.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_issue6

For each case (a filter, a search, a page at some depth, a message's detail) it times the service
call as the page makes it (SQL plus Python, 15 runs, after 2 warm-up runs) and, as the raw floor
in the same run, the same page SQL executed directly on the driver. Depths are the first page,
the middle and the very last rows of the filter (the cursor is taken from those rows), so "any
depth" is measured, not assumed. Target: every service call under 50 ms. With ``--apptest`` it
also times a warm rerun of the Messages page (AppTest, signed in as the clinic's front desk).
The database is only read (the AppTest sign-in writes its audit event).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, func, select, text

from app.services import explorer, patients
from app.services.explorer import Cursor, MessageFilter
from app.services.permissions import Actor
from db.enums import MessageStatus, Role
from db.models import Message, Patient, Tenant, User
from db.session import make_engine, tenant_session

RUNS = 15


def timed(fn: Callable[[], Any], runs: int = RUNS) -> tuple[float, float]:
    """Median and worst milliseconds of ``fn`` after two warm-up calls."""
    for _ in range(2):
        fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def actor_for(engine: Engine, slug: str, role: Role) -> Actor:
    with engine.connect() as conn:
        tenant = conn.execute(select(Tenant.id, Tenant.name).where(Tenant.slug == slug)).one()
        user = conn.execute(select(User.id, User.username).where(User.tenant_id == tenant.id,
                                                                  User.role == role.value)).first()
    assert user is not None
    return Actor(user_id=user.id, tenant_id=tenant.id, username=user.username, display_name=user.username,
                 role=role, tenant_name=tenant.name)


def cursor_at(engine: Engine, actor: Actor, flt: MessageFilter, fraction: float) -> Cursor | None:
    """The cursor that starts a page ``fraction`` of the way into the filter's rows (set-up only)."""
    if fraction == 0:
        return None
    with tenant_session(engine, actor.tenant_id) as session:
        query = explorer.build_query(session, flt)
        total = session.scalar(select(func.count()).select_from(Message).where(*query.where_all())) or 0
        order = (Message.created_at.asc(), Message.id.asc()) if flt.oldest_first else (
            Message.created_at.desc(), Message.id.desc())
        position = min(max(int(total * fraction), 1), max(total - 10, 1))
        row = session.execute(select(Message.created_at, Message.id).where(*query.where_all())
                              .order_by(*order).offset(position).limit(1)).first()
    return Cursor(row.created_at, row.id) if row else None


def raw_floor(engine: Engine, actor: Actor, flt: MessageFilter, after: Cursor | None) -> Callable[[], Any]:
    """The same page's SQL run straight on the driver (no ORM, no name look-ups)."""
    with tenant_session(engine, actor.tenant_id) as session:
        query = explorer.build_query(session, flt)
        statements = [explorer.compiled_sql(
            explorer.page_statement(query, after=after, limit=explorer.PAGE_SIZE + 1, oldest_first=flt.oldest_first),
            session.connection().dialect)]

    def run() -> Any:
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cur:
                for sql, params in statements:
                    cur.execute(sql, params)
                    cur.fetchall()
        finally:
            raw.close()
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--clinic", default="alnoor")
    parser.add_argument("--apptest", action="store_true", help="also time a warm rerun of the Messages page")
    args = parser.parse_args(argv)
    engine = make_engine(args.database_url)
    actor = actor_for(engine, args.clinic, Role.FRONT_DESK)
    with engine.connect() as conn:
        total = conn.scalar(select(func.count()).select_from(Message))
        phone, name_en, name_ar = conn.execute(
            select(Patient.phone_e164, Patient.name_en, Patient.name_ar)
            .where(Patient.tenant_id == actor.tenant_id, Patient.phone_e164.is_not(None)).limit(1)).one()
        bulk = conn.scalar(select(Message.bulk_job_id).where(Message.tenant_id == actor.tenant_id,
                                                             Message.bulk_job_id.is_not(None)).limit(1))
        template = conn.scalar(select(Message.template_id).where(Message.tenant_id == actor.tenant_id,
                                                                 Message.template_id.is_not(None)).limit(1))
        failed_id = conn.scalar(select(Message.id).where(Message.tenant_id == actor.tenant_id,
                                                         Message.status == "failed").limit(1))
    local = "0" + phone[4:] if phone.startswith("+966") else phone
    typed = f"+966 {phone[4:6]} {phone[6:9]} {phone[9:]}" if phone.startswith("+966") else phone
    every = MessageFilter(period="all")
    print(f"{total:,} messages in the database; clinic '{args.clinic}'; {RUNS} runs per case; ms = median / worst")
    cases: list[tuple[str, MessageFilter, tuple[float, ...]]] = [
        ("last 7 days (default)", MessageFilter(), (0, 0.5, 0.999)),
        ("all time, newest first", every, (0, 0.5, 0.999)),
        ("all time, oldest first", MessageFilter(period="all", oldest_first=True), (0, 0.5, 0.999)),
        ("status failed", MessageFilter(period="all", statuses=(MessageStatus.FAILED,)), (0, 0.5, 0.999)),
        ("failed+undelivered+unknown", MessageFilter(period="all", statuses=(
            MessageStatus.FAILED, MessageStatus.UNDELIVERED, MessageStatus.UNKNOWN)), (0, 0.5, 0.999)),
        ("status unknown (rare)", MessageFilter(period="all", statuses=(MessageStatus.UNKNOWN,)), (0,)),
        ("channel email, 90 days", MessageFilter(period="90d", channels=("email",)), (0, 0.5, 0.999)),  # type: ignore[arg-type]
        ("error code 30003", MessageFilter(period="all", error_code="30003"), (0, 0.5, 0.999)),
        ("one template", MessageFilter(period="all", template_id=template), (0, 0.5, 0.999)),
        ("one bulk send", MessageFilter(period="all", bulk_job_id=bulk), (0, 0.5)),
        (f"search phone '{local}'", MessageFilter(period="all", search=local), (0, 0.5, 0.999)),
        (f"search phone '{typed}'", MessageFilter(period="all", search=typed), (0,)),
        (f"search name '{name_en.split()[0]}'", MessageFilter(period="all", search=name_en.split()[0]), (0, 0.5)),
        (f"search Arabic name '{name_ar.split()[0]}'", MessageFilter(period="all", search=name_ar.split()[0]),
         (0,)),
        ("failed, 30 days, SMS, hide tests", MessageFilter(period="30d", statuses=(MessageStatus.FAILED,),
                                                           channels=("sms",)), (0, 0.5, 0.999)),  # type: ignore[arg-type]
    ]
    worst = 0.0
    print(f"{'case':44} {'depth':>6} {'service ms':>14} {'raw SQL ms':>14}")
    for label, flt, depths in cases:
        for depth in depths:
            after = cursor_at(engine, actor, flt, depth)

            def page(flt: MessageFilter = flt, after: Cursor | None = after) -> Any:
                with tenant_session(engine, actor.tenant_id) as session:
                    return explorer.list_messages(session, actor, flt, after=after)

            median, high = timed(page)
            raw_median, raw_high = timed(raw_floor(engine, actor, flt, after))
            worst = max(worst, median)
            print(f"{label:44} {depth:>6.1%} {median:7.1f} /{high:5.1f} {raw_median:7.1f} /{raw_high:5.1f}")

    def detail() -> Any:
        with tenant_session(engine, actor.tenant_id) as session:
            return explorer.message_detail(session, actor, failed_id)

    def count(flt: MessageFilter) -> Callable[[], Any]:
        def run() -> Any:
            with tenant_session(engine, actor.tenant_id) as session:
                return explorer.count_messages(session, actor, flt)
        return run

    def find_patient() -> Any:
        with tenant_session(engine, actor.tenant_id) as session:
            return patients.search_patients(session, actor, typed)

    def patient_view() -> Any:
        with tenant_session(engine, actor.tenant_id) as session:
            found = patients.search_patients(session, actor, local)
            return patients.patient_detail(session, actor, found[0].id)

    extra = [("message detail (with timeline)", detail), ("patient search by phone", find_patient),
             ("patient view (detail + why)", patient_view),
             ("count, default filter", count(MessageFilter())),
             ("count, all time (estimate)", count(every)),
             ("count, failed 30 days", count(MessageFilter(period="30d", statuses=(MessageStatus.FAILED,))))]
    for label, fn in extra:
        median, high = timed(fn)
        print(f"{label:44} {'':>6} {median:7.1f} /{high:5.1f}")
        if label.startswith("count"):
            print(f"{'':44} -> {fn().label}")
    with engine.connect() as conn:
        started = time.perf_counter()
        for _ in range(RUNS):
            conn.execute(text("SELECT 1"))
        print(f"{'floor: one SELECT 1 round trip':44} {'':>6} {(time.perf_counter() - started) * 1000 / RUNS:7.2f}")
    print(f"slowest page (median): {worst:.1f} ms -> {'OK' if worst < 50 else 'OVER'} the 50 ms target")
    if args.apptest:
        apptest_rerun(args.database_url, args.clinic)
    return 0


def apptest_rerun(url: str, slug: str) -> None:
    """A warm rerun of the Messages page as the browser would trigger it (AppTest, same process)."""
    os.environ["DATABASE_URL"] = url
    os.environ["EMBEDDED_WORKER"] = "false"
    from streamlit.testing.v1 import AppTest

    from app.demo.content import DEMO_PASSWORD

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py"),
                           default_timeout=60).run()
    at.text_input(key="login_username").input(f"{slug}.frontdesk")
    at.text_input(key="login_password").input(DEMO_PASSWORD)
    next(b for b in at.button if b.label == "Sign in").click().run()
    at.switch_page("../pages/messages.py").run()
    assert not at.exception, at.exception
    samples = []
    for _ in range(8):
        started = time.perf_counter()
        at.run()
        samples.append((time.perf_counter() - started) * 1000)
    print(f"{'warm rerun of the Messages page (AppTest)':44} {'':>6} {statistics.median(samples[2:]):7.1f} /"
          f"{max(samples[2:]):5.1f}   (target 300 ms)")


if __name__ == "__main__":
    raise SystemExit(main())
