"""Benchmark the demo seeder on PostgreSQL against the raw COPY floor.

    python bench/bench_seed.py --messages 1000000 [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Creates a fresh database ``bench_seed_<random>`` next to the one the URL names, migrates it, runs
``seed_demo(messages=N)`` and then measures, on the very rows the seeder wrote:

1. the raw floor: ``COPY messages FROM STDIN`` of those rows (read back into memory with
   ``COPY (SELECT ...) TO STDOUT``) into the emptied table, indexes and foreign keys in place;
2. the same COPY with the primary key, indexes and foreign keys set aside and rebuilt afterwards
   (what the seeder does for big loads), so the seeder's own overhead can be read off directly.

The database is dropped at the end, also when something fails.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.demo import seed_demo
from app.demo.seeder import _LoadAside
from db.migrate import upgrade
from db.session import make_engine

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _read_back(engine: Engine) -> tuple[list[bytes], int]:
    """Every messages row as COPY text, in memory."""
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur, cur.copy("COPY (SELECT * FROM messages) TO STDOUT") as copy:
            data = [bytes(block) for block in copy]
        raw.commit()
    finally:
        raw.close()
    return data, sum(block.count(b"\n") for block in data)


def _copy_in(engine: Engine, data: list[bytes], *, set_aside: bool) -> float:
    """Empty messages, COPY the rows back in and commit; the seconds the COPY (and rebuild) took."""
    with engine.connect() as conn, conn.begin():
        conn.execute(text("TRUNCATE messages CASCADE"))
        aside = _LoadAside(conn, ["messages"]) if set_aside else None
        started = time.perf_counter()
        if aside:
            aside.drop()
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        with dbapi.cursor() as cur, cur.copy("COPY messages FROM STDIN") as copy:
            for block in data:
                copy.write(block)
        if aside:
            aside.restore()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages to seed (default 1,000,000)")
    parser.add_argument("--database-url", default=DEFAULT_ADMIN_URL,
                        help="a PostgreSQL database to connect to while creating and dropping the bench one")
    parser.add_argument("--patients-per-clinic", type=int, default=2000)
    args = parser.parse_args(argv)

    admin_url = make_url(args.database_url).set(drivername="postgresql+psycopg")
    name = f"bench_seed_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(admin_url.set(database=name).render_as_string(hide_password=False))
    try:
        upgrade(engine)
        print(f"Seeding {args.messages:,} messages into {name} ...", flush=True)
        started = time.perf_counter()
        report = seed_demo(engine, messages=args.messages, patients_per_clinic=args.patients_per_clinic,
                           progress=lambda line: print("  " + line, flush=True))
        wall = time.perf_counter() - started
        print("  phases: " + ", ".join(f"{k} {v:.1f}s" for k, v in report.timings.items()
                                       if not k.startswith("rebuild ")))
        rebuilds = sorted(((v, k.removeprefix("rebuild ")) for k, v in report.timings.items()
                           if k.startswith("rebuild ")), reverse=True)
        if rebuilds:
            print("  slowest rebuilds: " + ", ".join(f"{name} {sec:.1f}s" for sec, name in rebuilds[:5]))
        seed_rate = report.messages / wall

        data, rows = _read_back(engine)
        size_mb = sum(len(b) for b in data) / 1e6
        print(f"Raw floor: {rows:,} rows ({size_mb:,.0f} MB of COPY text) read back into memory.", flush=True)
        floor = _copy_in(engine, data, set_aside=False)
        floor_aside = _copy_in(engine, data, set_aside=True)

        print()
        print(f"seed_demo, total             {wall:7.1f} s  {seed_rate:10,.0f} messages/s  "
              f"(+ {report.message_logs:,} timeline events, {report.patients:,} patients; "
              f"timelines for the last {report.timeline_days or 90} days)")
        print(f"raw COPY, indexes in place   {floor:7.1f} s  {rows / floor:10,.0f} rows/s   "
              f"seed/raw = {wall / floor:.2f}")
        print(f"raw COPY, indexes rebuilt    {floor_aside:7.1f} s  {rows / floor_aside:10,.0f} rows/s   "
              f"seed/raw = {wall / floor_aside:.2f}")
        return 0
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
