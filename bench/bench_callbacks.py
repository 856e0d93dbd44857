"""Status-callback throughput of the callback service (``python -m worker.webhooks``) on PostgreSQL,
next to its floor: the least work that does the same job, in the same run.

    python bench/bench_callbacks.py [--callbacks 20000] [--workers 2] [--connections 64]

Creates messages that Twilio "accepted" (twice as many: one half for the floor, one for the
service, in the same table), and fires correctly signed ``delivered`` callbacks over keep-alive
connections from a lean asyncio client (signatures computed beforehand, so the client costs
little). Then a second pass repeats every callback and adds a late ``sent`` for each: the
duplicates must change nothing.

The floor (``floor_app`` below) takes the same signed POSTs from the same client at the same
concurrency, on the same server stack (uvicorn, Starlette, ``--workers`` processes): it parses
the form, validates the Twilio signature with the SDK's ``RequestValidator``, and moves the
message and writes its lifecycle event (what the service does for these callbacks) in one
plain statement, the callbacks that arrive together in one transaction (a group commit, like
the service's, with no wait to gather them), answering each after its commit. Nothing else: no
body limit, no clinic token look-up, no price, no fallback, no ORM. The service cannot beat it.
Prints both, the ratio, the load average, and checks every message ended ``delivered`` with one
lifecycle event.
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


# --- the floor: a bare handler on the same stack -------------------------------------------------


def _floor_sql() -> str:
    """Move the messages whose step is allowed and write their lifecycle events: one statement."""
    from db.enums import ALLOWED_TRANSITIONS

    pairs = ", ".join(f"('{a.value}', '{b.value}')" for a, targets in ALLOWED_TRANSITIONS.items() for b in targets)
    return f"""
    WITH moved AS (
        UPDATE messages AS m SET status = i.new, updated_at = now(),
            sent_at = CASE WHEN i.new = 'sent' THEN COALESCE(m.sent_at, now()) ELSE m.sent_at END,
            delivered_at = CASE WHEN i.new = 'delivered' THEN COALESCE(m.delivered_at, now()) ELSE m.delivered_at END
        FROM unnest(%s::text[], %s::text[]) AS i(sid, new)
        WHERE m.provider_message_id = i.sid AND (m.status, i.new) IN ({pairs})
        RETURNING m.id, m.tenant_id, m.status
    )
    INSERT INTO message_logs (id, message_id, tenant_id, event, from_status, to_status, provider, detail, created_at)
    SELECT gen_random_uuid(), id, tenant_id, 'callback', 'sent', status, 'twilio', 'callback', now() FROM moved
    """  # every message here was sent before its first callback: the event's from_status is known


class _GroupCommit:
    """The callbacks that arrive while the previous group is in the database go in together."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, str, asyncio.Future[None]]] = []
        self.task: asyncio.Task[None] | None = None
        self.connection = None
        self.sql = _floor_sql()

    async def submit(self, sid: str, new: str) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((sid, new, future))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self.drain())
        await future

    async def drain(self) -> None:
        import psycopg

        if self.connection is None:
            self.connection = await psycopg.AsyncConnection.connect(os.environ["FLOOR_DATABASE_URL"])
        while self.pending:
            await asyncio.sleep(0.005)  # the service's gathering (StatusBatcher): as few commits as it makes
            group, self.pending = self.pending[:500], self.pending[500:]
            async with self.connection.transaction():
                await self.connection.execute(self.sql, ([g[0] for g in group], [g[1] for g in group]))
            for _, _, future in group:
                future.set_result(None)


def _floor_app():  # type: ignore[no-untyped-def]
    from urllib.parse import parse_qsl

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(os.environ.get("TWILIO_AUTH_TOKEN", ""))
    base = os.environ.get("PUBLIC_BASE_URL", "")
    statuses = {"sent": "sent", "delivered": "delivered"}
    group = _GroupCommit()

    async def status(request: Request) -> Response:
        params = dict(parse_qsl((await request.body()).decode()))
        url = f"{base}{request.url.path}?{request.url.query}"
        if not validator.validate(url, params, request.headers.get("X-Twilio-Signature", "")):
            return Response("invalid signature", status_code=403)
        await group.submit(params["MessageSid"], statuses[params["MessageStatus"]])
        return Response(status_code=204)

    return Starlette(routes=[Route("/twilio/status", status, methods=["POST"])])


floor_app = _floor_app() if os.environ.get("FLOOR_DATABASE_URL") else None  # in the floor's uvicorn workers


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


def _serve(argv: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(argv, cwd=ROOT, env=env)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    time.sleep(1.0)
    return server


def _passes(port: int, base: str, pairs: list[tuple[str, str]], connections: int) -> tuple[float, dict[int, int],
                                                                                          float, dict[int, int]]:
    """The delivered callbacks, then every one again with a late ``sent``: (seconds, statuses) of each."""
    delivered = _requests(base, pairs, "delivered")
    first_s, first = asyncio.run(_fire(port, delivered, connections))
    late = _requests(base, pairs, "sent")
    repeat_s, repeat = asyncio.run(_fire(port, delivered + late, connections))
    return first_s, first, repeat_s, repeat


def _outcome(database_url: str, pairs: list[tuple[str, str]]) -> tuple[dict[str, int], int]:
    from sqlalchemy import bindparam, create_engine, text

    engine = create_engine(database_url)
    ids = [mid for mid, _ in pairs]
    with engine.connect() as conn:
        counts = dict(conn.execute(text("SELECT status, count(*) FROM messages WHERE CAST(id AS text) IN :ids "
                                        "GROUP BY status").bindparams(bindparam("ids", expanding=True)),
                                   {"ids": ids}).all())
        logs = conn.execute(text("SELECT count(*) FROM message_logs WHERE CAST(message_id AS text) IN :ids")
                            .bindparams(bindparam("ids", expanding=True)), {"ids": ids}).scalar_one()
    engine.dispose()
    return counts, logs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callbacks", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="floor and service alternate, each on fresh messages")
    args = parser.parse_args()
    n = args.callbacks
    results: dict[str, list[tuple[float, float]]] = {"floor": [], "service": []}
    answered: dict[str, list[dict[int, int]]] = {"floor": [], "service": []}
    outcomes: dict[str, list[tuple[dict[str, int], int]]] = {"floor": [], "service": []}
    with temporary_database(prefix="bench_callbacks") as database_url:
        pairs = _seed(database_url, 2 * args.rounds * n)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "DATABASE_URL": database_url, "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_BASE_URL": base,
               "REDIS_URL": ""}
        from sqlalchemy.engine import make_url

        plain_url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        commands = {
            "floor": ([sys.executable, "-m", "uvicorn", "bench_callbacks:floor_app", "--app-dir", "bench",
                       "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
                       "--log-level", "warning", "--no-access-log", "--proxy-headers"],
                      {**env, "FLOOR_DATABASE_URL": plain_url}),
            "service": ([sys.executable, "-m", "worker.webhooks", "--port", str(port), "--workers",
                         str(args.workers)], env),
        }
        for round_ in range(args.rounds):
            for side in ("floor", "service"):
                part = pairs[:n]
                pairs = pairs[n:]
                server = _serve(*commands[side], port)
                try:
                    first_s, first, repeat_s, repeat = _passes(port, base, part, args.connections)
                finally:
                    server.terminate()
                    server.wait(20)
                results[side].append((first_s, repeat_s))
                answered[side] += [first, repeat]
                outcomes[side].append(_outcome(database_url, part))
                load = os.getloadavg()
                print(f"round {round_ + 1} {side:7}: delivered {n / first_s:6.0f}/s, repeats + late 'sent' "
                      f"{2 * n / repeat_s:6.0f}/s; load {load[0]:.2f}")
    load = os.getloadavg()
    best = {side: (min(r[0] for r in runs), min(r[1] for r in runs)) for side, runs in results.items()}
    print(f"callbacks: {args.workers} uvicorn workers, {args.connections} connections, {n:,} messages a pass, "
          f"best of {args.rounds} rounds each; load {load[0]:.2f} {load[1]:.2f}")
    print(f"  delivered callbacks   service {n / best['service'][0]:6.0f}/s   floor {n / best['floor'][0]:6.0f}/s   "
          f"service/floor rate {best['floor'][0] / best['service'][0]:.2f}")
    print(f"  repeats + late 'sent' service {2 * n / best['service'][1]:6.0f}/s   floor "
          f"{2 * n / best['floor'][1]:6.0f}/s   service/floor rate {best['floor'][1] / best['service'][1]:.2f}")
    for side in ("service", "floor"):
        print(f"  {side:7} answered {answered[side]}; messages by status and lifecycle events {outcomes[side]} "
              f"(expected {{'delivered': {n}}} and {n} events a pass)")


if __name__ == "__main__":
    main()
