"""Status-callback throughput of the callback service (``python -m worker.webhooks``) on PostgreSQL.

    python bench/bench_callbacks.py [--callbacks 20000] [--workers 2] [--connections 64]

Creates messages that Twilio "accepted", starts the real service (uvicorn, ``--workers``
processes), and fires correctly signed ``delivered`` callbacks at it over keep-alive
connections from a lean asyncio client (signatures computed beforehand, so the client costs
little). Then a second pass repeats every callback: the duplicates must change nothing.
Reports callbacks per second and checks every message ended ``delivered``. For comparison it
also times the service's floor in the same run: ``GET /health`` over the same connections.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import socket
import subprocess
import sys
import time
import uuid
from urllib.parse import urlencode

from _support import ROOT, temporary_database

TOKEN = "bench-auth-token"  # noqa: S105 - a throw-away token for the local benchmark


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed(database_url: str, count: int) -> list[tuple[str, str]]:
    """``count`` sent messages; returns (message id, provider sid) pairs."""
    from sqlalchemy import insert

    from app.services import tenants
    from db.enums import Channel, MessageStatus
    from db.models import Message
    from db.session import make_engine, system_session

    engine = make_engine(database_url)
    now = dt.datetime.now(dt.UTC)
    with system_session(engine) as session:
        tenant = tenants.create_tenant(session, name="Bench", slug=f"bench-{uuid.uuid4().hex[:6]}").id
    pairs = [(uuid.uuid4(), f"SM{uuid.uuid4().hex}") for _ in range(count)]
    rows = [{"id": mid, "tenant_id": tenant, "channel": Channel.SMS, "recipient": f"+96650{i:07d}", "body": "x",
             "status": MessageStatus.SENT, "provider": "twilio", "provider_message_id": sid, "segments": 1,
             "created_at": now, "updated_at": now, "sent_at": now}
            for i, (mid, sid) in enumerate(pairs)]
    with engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(insert(Message.__table__), rows[start:start + 5000])
    engine.dispose()
    return [(str(mid), sid) for mid, sid in pairs]


def _requests(base: str, pairs: list[tuple[str, str]], status: str) -> list[bytes]:
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(TOKEN)
    host = base.removeprefix("http://")
    out = []
    for mid, sid in pairs:
        path = f"/twilio/status?mid={mid}"
        params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "0" * 32, "MessageStatus": status,
                  "SmsStatus": status, "To": "+966500000000", "From": "+15005550006", "ApiVersion": "2010-04-01"}
        signature = validator.compute_signature(base + path, params)
        body = urlencode(params).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nX-Twilio-Signature: {signature}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n")
        out.append(head.encode() + body)
    return out


async def _fire(port: int, requests: list[bytes], connections: int) -> tuple[float, dict[int, int]]:
    statuses: dict[int, int] = {}

    async def one_connection(part: list[bytes]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in part:
                writer.write(request)
                await writer.drain()
                status_line = await reader.readline()
                code = int(status_line.split()[1])
                statuses[code] = statuses.get(code, 0) + 1
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection(requests[i::connections]) for i in range(connections)))
    return time.perf_counter() - started, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callbacks", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    with temporary_database(prefix="bench_callbacks") as database_url:
        pairs = _seed(database_url, args.callbacks)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "DATABASE_URL": database_url, "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_BASE_URL": base,
               "REDIS_URL": ""}
        server = subprocess.Popen([sys.executable, "-m", "worker.webhooks", "--port", str(port),
                                   "--workers", str(args.workers)], cwd=ROOT, env=env)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            time.sleep(1.0)
            health = [f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()] * args.callbacks
            floor_s, _ = asyncio.run(_fire(port, health, args.connections))
            delivered = _requests(base, pairs, "delivered")
            first_s, first = asyncio.run(_fire(port, delivered, args.connections))
            late = _requests(base, pairs, "sent")
            repeat_s, repeat = asyncio.run(_fire(port, delivered + late, args.connections))
        finally:
            server.terminate()
            server.wait(20)
        from sqlalchemy import create_engine, text

        engine = create_engine(database_url)
        with engine.connect() as conn:
            counts = dict(conn.execute(text("SELECT status, count(*) FROM messages GROUP BY status")).all())
            logs = conn.execute(text("SELECT count(*) FROM message_logs")).scalar_one()
        engine.dispose()
    n = args.callbacks
    print(f"callback service: {args.workers} uvicorn workers, {args.connections} connections, {n:,} messages")
    print(f"  GET /health floor         {n / floor_s:8.0f} req/s")
    print(f"  delivered callbacks       {n / first_s:8.0f} callbacks/s   statuses {first}")
    print(f"  repeats + late 'sent'     {2 * n / repeat_s:8.0f} callbacks/s   statuses {repeat}")
    print(f"  messages by status        {counts}   lifecycle events written: {logs:,} (expected {n:,})")


if __name__ == "__main__":
    main()
