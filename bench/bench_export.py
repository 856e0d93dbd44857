"""Benchmark the CSV export of about 1,000,000 messages against PostgreSQL's own COPY, in the same run.

    python bench/bench_export.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_issue6

Picks the custom date range (clinic days) of one clinic that holds about ``--rows`` messages, then
measures, each in a fresh child process (so peak memory is the export's own):

1. the floor: the same parallel work with the columns unformatted. The export reads the two
   halves of the time span side by side, as two ``COPY ... TO STDOUT`` on two connections that
   share a snapshot (the second half spooled, then appended); so does the floor: the same split,
   snapshot, settings and client loop (``message_export._copy_in_two_halves``), each half a
   ``COPY (SELECT <the same columns, raw> ... same filter, same order)``, written to a file. Only
   the formatting, neutralisation and masking differ. (Until 2026-12-06 the floor was one COPY
   of all the rows, which the two halves beat: not a floor.)
2. the export as the app runs it (``message_export.write_csv``: formatting, neutralisation and masking in
   the database, streamed to a file with a BOM), unmasked and masked (analyst);
3. the background job's gzip file (``run_export``) of the same filter.

Targets: the export under 3 s from database to file, peak memory under 100 MB, within 2x of the floor.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select

from app.services import message_export
from app.services.explorer import MessageFilter, build_query
from db.enums import Role
from db.models import Message, Tenant
from db.session import make_engine, tenant_session

COLUMNS = list(message_export.DEFAULT_COLUMNS)


def _pick_filter(url: str, slug: str, rows: int) -> tuple[MessageFilter, str]:
    engine = make_engine(url)
    with engine.connect() as conn:
        tenant_id, timezone = conn.execute(select(Tenant.id, Tenant.timezone).where(Tenant.slug == slug)).one()
        boundary = conn.scalar(select(Message.created_at).where(Message.tenant_id == tenant_id)
                               .order_by(Message.created_at.desc()).offset(rows).limit(1))
    engine.dispose()
    start = boundary.astimezone(ZoneInfo(timezone)).date() + dt.timedelta(days=1)
    return MessageFilter(period="custom", date_from=start, date_to=dt.date.today() + dt.timedelta(days=1),
                         include_test=True), str(tenant_id)


def _floor(url: str, tenant_id: str, flt: MessageFilter, path: str) -> int:
    engine = make_engine(url)
    with tenant_session(engine, __import__("uuid").UUID(tenant_id)) as session, open(path, "wb") as out:
        columns = message_export.check_columns(COLUMNS)
        query = build_query(session, flt)
        raw = message_export._statement(query, flt, columns, [c.source().label(c.key) for c in columns])
        return message_export._copy_in_two_halves(session, query, flt, raw, out.write)


def _export(url: str, tenant_id: str, flt: MessageFilter, path: str, masked: bool) -> int:
    engine = make_engine(url)
    with tenant_session(engine, __import__("uuid").UUID(tenant_id)) as session, open(path, "wb") as out:
        return message_export.write_csv(session, flt, COLUMNS, out, masked=masked)


def _background(url: str, tenant_id: str, flt: MessageFilter, directory: str) -> int:
    import uuid

    from app.services.permissions import Actor
    from tests.delivery.conftest import RecordingQueue

    engine = make_engine(url)
    tid = uuid.UUID(tenant_id)
    with engine.connect() as conn:
        from db.models import User

        user_id, username = conn.execute(select(User.id, User.username).where(
            User.tenant_id == tid, User.role == Role.ANALYST.value)).one()
    analyst = Actor(user_id=user_id, tenant_id=tid, username=username, display_name=username, role=Role.ANALYST)
    with tenant_session(engine, tid) as session:
        session.info["queue"] = RecordingQueue()  # the job is run just below, not by a worker
        info = message_export.request_export(session, analyst, flt, COLUMNS)
    return message_export.run_export(engine, tid, info.id, directory=Path(directory))


def _child(target, args, results) -> None:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    rows = target(*args)
    seconds = time.perf_counter() - started
    results.put((rows, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


def measure(label: str, target, *args, runs: int = 3):  # type: ignore[no-untyped-def]
    """Median seconds and the largest peak RSS over ``runs`` fresh child processes (no tracing: it
    would slow the per-row COPY loop down and measure the tracer)."""
    samples = []
    for _ in range(runs):
        results: multiprocessing.Queue = multiprocessing.Queue()
        process = multiprocessing.Process(target=_child, args=(target, args, results))
        process.start()
        samples.append(results.get())
        process.join()
    rows = samples[0][0]
    seconds = statistics.median(s[1] for s in samples)
    rss_mb = max(s[2] for s in samples) / 1024
    print(f"{label:52} {rows:>10,} rows {seconds:7.2f} s (median of {runs}: "
          f"{', '.join(f'{s[1]:.2f}' for s in samples)})   peak RSS {rss_mb:6.1f} MB")
    return rows, seconds, rss_mb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--clinic", default="alnoor")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-background", action="store_true",
                        help="leave out the background gzip job (it records an export and its audit events)")
    args = parser.parse_args(argv)
    flt, tenant_id = _pick_filter(args.database_url, args.clinic, args.rows)
    print(f"filter {flt.to_params()} (clinic '{args.clinic}'), columns {', '.join(COLUMNS)}; "
          f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        floor_path, export_path = os.path.join(tmp, "floor.csv"), os.path.join(tmp, "export.csv")
        _, floor_s, _ = measure("floor: the same two COPYs side by side, raw columns", _floor, args.database_url,
                                tenant_id, flt, floor_path)
        rows, export_s, rss = measure("message_export.write_csv to a file (full contacts)", _export, args.database_url,
                                      tenant_id, flt, export_path, False)
        size = os.path.getsize(export_path)
        _, masked_s, masked_rss = measure("message_export.write_csv to a file (masked, analyst)", _export,
                                          args.database_url, tenant_id, flt, export_path, True)
        gzip_s = float("nan")
        if not args.skip_background:
            _, gzip_s, _ = measure("background job: run_export to .csv.gz (analyst)", _background,
                                   args.database_url, tenant_id, flt, tmp, runs=1)
            gz = next(Path(tmp).rglob("*.csv.gz"))
            print(f"CSV {size / 2**20:.0f} MB; gzip file {gz.stat().st_size / 2**20:.0f} MB")
    worst = max(export_s, masked_s)
    print(f"export vs floor: {export_s / floor_s:.2f}x full, {masked_s / floor_s:.2f}x masked (target <= 2x); "
          f"{worst:.2f} s (target < 3 s); peak RSS {max(rss, masked_rss):.0f} MB (target < 100 MB); "
          f"background gzip {gzip_s:.2f} s for {rows:,} rows; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
