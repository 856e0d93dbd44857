"""The production shape on separate network hosts of this one machine (Linux network namespaces).

    sudo .venv/bin/python bench/bench_multihost.py [--messages 4000] [--latency-ms 200]
                                                   [--workers-per-host 2] [--concurrency 8]

It needs root: it creates one network namespace per host, joined by a bridge in a namespace of
its own (10.77.0.0/24; nothing is added to the machine's own network):

    db 10.77.0.10        a private PostgreSQL 15 cluster made for the run (initdb in a temporary
                         directory, trust for the subnet only; the machine's own server is not used)
    redis 10.77.0.11     a private redis-server (no persistence, noeviction)
    app 10.77.0.20       ``python -m app migrate``, ``db-roles``, ``create-tenant``, ``create-user``;
                         seeds a clinic and a neighbouring clinic whose patients share names and
                         numbers; signs in as each clinic's admin and starts each bulk send with the
                         wizard's own calls (``bulk.wizard.dry_run`` then ``confirm``); reads the
                         results
    provider 10.77.0.30  the loopback fake Twilio (``tests.peers.fake_twilio``), answering every
                         request after ``--latency-ms``, so a host's throughput is bound by the
                         requests it keeps in flight, as with the real Twilio
    worker1 10.77.0.41   ``--workers-per-host`` × ``python -m worker`` (RQ worker, scheduler, sweeper)
    worker2 10.77.0.42   the same
    callbacks 10.77.0.50 ``python -m worker.webhooks`` at PUBLIC_BASE_URL: the provider's signed status
                         callbacks (each message is reported ``delivered`` once all are sent)

Every process is configured only by its environment (the variables of docs/operations.md) and
reaches the others over the virtual network. The app and the workers connect as ``clinic_app``
(row-level security applies), the migrations as the tables' owner.

1. One worker host sends ``--messages`` SMS (no rate cap); 2. both hosts send the same number.
   Throughput is counted at the provider (its receive times: first to last request). Target:
   two hosts ≥ 1.7× one. ``--repeat N`` alternates the two N times and takes the medians.
3. Both hosts send ``--messages`` for the clinic and a quarter as many for the neighbour; when
   ``--kill-after`` of them have reached the provider, worker2's link is cut at the bridge and
   every process in its namespace is killed (SIGKILL): a host lost without a goodbye. The
   remaining host's sweeper recovers what worker2 held (its jobs re-enqueued once their heartbeat
   is gone, its ``sending`` messages settled by asking the provider) after
   ``SWEEP_QUEUED_AFTER_SECONDS`` / ``SWEEP_SENDING_AFTER_SECONDS`` (``--sweep-after``). Checked
   from the database and the provider's own request log: every message sent, then delivered (its
   report through the callback host) and both jobs ``completed``; none requested twice, every
   request carrying its own clinic's text; the recovery time is printed, with when PostgreSQL ended
   the lost host's sessions (the app role's TCP keepalive settings, ``python -m app db-roles``).

Everything it made (namespaces, links, processes, the cluster, its files) is removed on exit,
Ctrl-C and failure included. ``--keep-logs DIR`` keeps each process's log.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
SUBNET = "10.77.0"
HOSTS = {"db": 10, "redis": 11, "app": 20, "provider": 30, "worker1": 41, "worker2": 42, "callbacks": 50}
PREFIX = "mh-"  # namespace names: mh-net (the bridge), mh-db, mh-redis, ...
BRIDGE_NS = PREFIX + "net"
PROVIDER_PORT = 8765
CALLBACKS_PORT = 8080
# fresh for every run; the app host inherits them
APP_PASSWORD = os.environ.setdefault("BENCH_APP_PASSWORD", secrets.token_urlsafe(16))
ADMIN_PASSWORD = os.environ.setdefault("BENCH_ADMIN_PASSWORD", secrets.token_urlsafe(16))
HANDED_OVER = ("sent", "delivered", "read", "failed", "undelivered", "cancelled", "suppressed")  # no worker needed
FINAL = ("delivered", "read", "failed", "undelivered", "cancelled", "suppressed")  # the provider's report came
REPLY = "@@"  # the app host's answers start with this (anything else on its stdout is ignored)


def addr(host: str) -> str:
    return f"{SUBNET}.{HOSTS[host]}"


def urls() -> dict[str, str]:
    db = f"{addr('db')}:5432/clinic"
    return {
        "owner": f"postgresql+psycopg://postgres@{db}",
        "app": f"postgresql+psycopg://clinic_app:{APP_PASSWORD}@{db}",
        "redis": f"redis://{addr('redis')}:6379/0",
        "provider": f"http://{addr('provider')}:{PROVIDER_PORT}",
        "callbacks": f"http://{addr('callbacks')}:{CALLBACKS_PORT}",  # PUBLIC_BASE_URL (no TLS proxy here)
    }


def base_env() -> dict[str, str]:
    """A clean environment: nothing of this machine's settings (its DATABASE_URL, ...) leaks in."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1"}


def worker_env(args: argparse.Namespace) -> dict[str, str]:
    """What a worker host needs (docs/operations.md, "Several machines")."""
    from tests.peers.fake_twilio.store import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

    u = urls()
    return {**base_env(), "DATABASE_URL": u["app"], "REDIS_URL": u["redis"], "RQ_QUEUE": "deliveries",
            "SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN, "TWILIO_FROM_NUMBER": "+15005550006",
            "TWILIO_API_BASE_URL": u["provider"], "PUBLIC_BASE_URL": u["callbacks"],
            "SMS_RATE_PER_SECOND": "100000", "DELIVERY_CONCURRENCY": str(args.concurrency),
            "SWEEP_INTERVAL_SECONDS": "2", "SWEEP_QUEUED_AFTER_SECONDS": str(args.sweep_after),
            "SWEEP_SENDING_AFTER_SECONDS": str(args.sweep_after), "PROVIDER_TIMEOUT_SECONDS": "5"}


def app_env(args: argparse.Namespace) -> dict[str, str]:
    u = urls()
    return {**worker_env(args), "MIGRATION_DATABASE_URL": u["owner"], "CLINIC_APP_PASSWORD": APP_PASSWORD,
            "BENCH_OWNER_URL": u["owner"], "BENCH_PROVIDER_URL": u["provider"],
            "BENCH_APP_PASSWORD": APP_PASSWORD, "BENCH_ADMIN_PASSWORD": ADMIN_PASSWORD}


def sh(*argv: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, text=True, capture_output=True, **kw)


# ---------------------------------------------------------------------------------------------
# The machine: namespaces, the bridge, processes (run as root, in the root namespace)
# ---------------------------------------------------------------------------------------------

class Machines:
    """The hosts and everything started on them; ``close()`` removes all of it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir()
        self.made: list[str] = []  # namespaces created, in order
        self.procs: dict[str, subprocess.Popen[Any]] = {}
        self.pg_data = Path(tempfile.mkdtemp(prefix="bench-multihost-pg-"))

    @staticmethod
    def ns(host: str) -> str:
        return PREFIX + host

    def build(self) -> None:
        stale = [n for n in [BRIDGE_NS, *map(self.ns, HOSTS)] if Path(f"/run/netns/{n}").exists()]
        for name in stale:  # left by an earlier run of this script that was killed hard
            print(f"removing namespace {name} left by an earlier run")
            self._empty(name)
            sh("ip", "netns", "del", name, check=False)
        sh("ip", "netns", "add", BRIDGE_NS)
        self.made.append(BRIDGE_NS)
        sh("ip", "-n", BRIDGE_NS, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", BRIDGE_NS, "link", "set", "br0", "up")
        for host in HOSTS:
            ns = self.ns(host)
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", BRIDGE_NS, "link", "add", f"v-{host}", "type", "veth", "peer", "name", "eth0",
               "netns", ns)
            sh("ip", "-n", BRIDGE_NS, "link", "set", f"v-{host}", "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{addr(host)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")

    def spawn(self, host: str, name: str, argv: list[str], env: dict[str, str], *, user: str | None = None,
              stdin: Any = None, stdout: Any = None) -> subprocess.Popen[Any]:
        prefix = ["ip", "netns", "exec", self.ns(host)] + (["runuser", "-u", user, "--"] if user else [])
        log = open(self.logs / f"{name}.log", "ab")  # kept open for the child's life
        proc = subprocess.Popen(prefix + argv, cwd=ROOT, env=env, stdin=stdin,
                                stdout=stdout if stdout is not None else log, stderr=log, start_new_session=True)
        self.procs[name] = proc
        return proc

    def run_on(self, host: str, argv: list[str], env: dict[str, str], *, user: str | None = None,
               input: str | None = None) -> str:
        prefix = ["ip", "netns", "exec", self.ns(host)] + (["runuser", "-u", user, "--"] if user else [])
        done = subprocess.run(prefix + argv, cwd=ROOT, env=env, input=input, text=True, capture_output=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(argv[:4])} on {host} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def wait_port(self, host: str, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        probe = f"import socket; socket.create_connection(('{addr(host)}', {port}), 1).close()"
        while subprocess.run(["ip", "netns", "exec", self.ns("app"), sys.executable, "-c", probe],
                             capture_output=True).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{host}:{port} did not answer within {timeout:.0f} s")
            time.sleep(0.3)

    def start_postgres(self) -> None:
        shutil.chown(self.pg_data, "postgres", "postgres")  # 0700, outside the root-only work directory
        sh("runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(self.pg_data), "-U", "postgres",
           "--auth=trust", "--no-sync", "-E", "UTF8", "--no-locale")
        with open(self.pg_data / "postgresql.conf", "a") as conf:
            conf.write(f"\nlisten_addresses = '{addr('db')}'\nport = 5432\nunix_socket_directories = '{self.pg_data}'\n"
                       "max_connections = 300\nlog_timezone = 'UTC'\n")
        with open(self.pg_data / "pg_hba.conf", "w") as hba:
            hba.write(f"local all all trust\nhost all all {SUBNET}.0/24 trust\n")
        self.spawn("db", "postgres", [str(PG_BIN / "postgres"), "-D", str(self.pg_data)], base_env(),
                   user="postgres")
        self.wait_port("db", 5432)

    def start_redis(self) -> None:
        self.spawn("redis", "redis", ["redis-server", "--bind", addr("redis"), "--port", "6379", "--save", "",
                                      "--appendonly", "no", "--protected-mode", "no",
                                      "--maxmemory-policy", "noeviction"], base_env())
        self.wait_port("redis", 6379)

    def start_provider(self, latency_ms: float) -> None:
        self.spawn("provider", "fake-twilio", [sys.executable, "-m", "tests.peers.fake_twilio", "--host",
                                               addr("provider"), "--port", str(PROVIDER_PORT),
                                               "--latency-ms", str(latency_ms)], base_env())
        self.wait_port("provider", PROVIDER_PORT)

    def start_callbacks(self, env: dict[str, str]) -> None:
        self.spawn("callbacks", "callbacks", [sys.executable, "-m", "worker.webhooks", "--host", addr("callbacks"),
                                              "--port", str(CALLBACKS_PORT)], env)
        self.wait_port("callbacks", CALLBACKS_PORT)

    def start_workers(self, host: str, count: int, env: dict[str, str], run: str) -> list[str]:
        names = [f"{run}-{host}-{i}" for i in range(count)]
        for name in names:
            self.spawn(host, name, [sys.executable, "-m", "worker", "--name", name], env)
        return names

    def stop(self, names: list[str]) -> None:
        """SIGTERM (a worker finishes its job and stops its scheduler), then wait."""
        for name in names:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.procs[name].pid, signal.SIGTERM)
        for name in names:
            try:
                self.procs[name].wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.procs[name].pid, signal.SIGKILL)
                self.procs[name].wait()

    def take_away(self, host: str) -> int:
        """Cut the host's cable at the bridge, then SIGKILL every process in its namespace."""
        sh("ip", "-n", BRIDGE_NS, "link", "set", f"v-{host}", "down")
        return self._empty(self.ns(host))

    def dead_sessions(self, since_wall: float) -> list[float]:
        """Seconds after ``since_wall`` at which PostgreSQL ended a session whose client went silent."""
        found = []
        for line in (self.logs / "postgres.log").read_text(errors="replace").splitlines():
            if "could not receive data from client" in line or "connection to client lost" in line:
                stamp = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.UTC)
                if stamp.timestamp() >= since_wall:
                    found.append(round(stamp.timestamp() - since_wall, 1))
        return found

    @staticmethod
    def _empty(ns: str) -> int:
        pids = [int(p) for p in sh("ip", "netns", "pids", ns, check=False).stdout.split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def close(self) -> None:
        postgres = self.procs.get("postgres")
        if postgres is not None and postgres.poll() is None:  # a fast shutdown frees its shared memory
            with contextlib.suppress(ProcessLookupError):
                os.killpg(postgres.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                postgres.wait(15)
        for ns in reversed(self.made):
            self._empty(ns)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        for ns in reversed(self.made):
            sh("ip", "netns", "del", ns, check=False)
        self.made.clear()


class AppHost:
    """The bench's own process on the app host: one JSON request and answer per line."""

    def __init__(self, machines: Machines, env: dict[str, str]) -> None:
        self.proc = machines.spawn("app", "app-host", [sys.executable, __file__, "--app-host"], env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def __call__(self, command: str, **kw: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps({"command": command, **kw}) + "\n").encode())
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"the app host stopped during '{command}' (see its log)")
            if line.startswith(REPLY):
                answer = json.loads(line[len(REPLY):])
                if "error" in answer:
                    raise RuntimeError(f"app host, {command}: {answer['error']}")
                return answer


# ---------------------------------------------------------------------------------------------
# The app host (runs inside the `app` namespace; talks to PostgreSQL, Redis and the provider)
# ---------------------------------------------------------------------------------------------

def _cli(*argv: str, input: str | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "app", *argv], cwd=ROOT, input=input, text=True,
                          capture_output=True)
    if done.returncode:
        raise RuntimeError(f"python -m app {argv[0]}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


class App:
    def __init__(self) -> None:
        import httpx
        from sqlalchemy import create_engine

        self.owner = create_engine(os.environ["BENCH_OWNER_URL"])  # the operator's view, for reading results
        self.provider = httpx.Client(base_url=os.environ["BENCH_PROVIDER_URL"], timeout=60)
        self.engine: Any = None
        self.clinics: dict[str, str] = {}
        self.seen = 0  # provider requests counted so far (wait_sends)

    def setup(self, patients: int, neighbours: int) -> dict[str, Any]:
        """The documented operator steps, then the patients (COPY as the owner: a data import)."""
        started = time.perf_counter()
        _cli("migrate")
        _cli("db-roles")
        for slug, name in (("alnoor", "Al Noor Clinic"), ("neighbour", "Neighbour Clinic")):
            _cli("create-tenant", "--name", name, "--slug", slug)
            _cli("create-user", "--tenant", slug, "--username", f"{slug}.admin", "--role", "admin",
                 "--password-stdin", input=ADMIN_PASSWORD + "\n")
        from sqlalchemy import text

        with self.owner.begin() as conn:
            self.clinics = {slug: str(i) for slug, i in conn.execute(text("SELECT slug, id FROM tenants"))}
        raw = self.owner.raw_connection()
        try:
            with raw.cursor() as cur, cur.copy(
                    "COPY patients (id, tenant_id, name_en, name_ar, phone_e164, language, is_active, "
                    "created_at, updated_at) FROM STDIN") as copy:
                for slug, count in (("alnoor", patients), ("neighbour", neighbours)):
                    for i in range(count):  # the neighbour's patients: the same names and numbers
                        copy.write(f"{os.urandom(16).hex()}\t{self.clinics[slug]}\tPatient {i}\tمريض {i}\t"
                                   f"+9665{i:08d}\ten\tt\t2026-01-01 00:00:00+00\t2026-01-01 00:00:00+00\n")
            raw.commit()
        finally:
            raw.close()
        with self.owner.begin() as conn:
            conn.execute(text("ANALYZE patients"))
        from db.session import make_engine

        self.engine = make_engine(os.environ["DATABASE_URL"])  # clinic_app: row-level security applies
        return {"clinics": self.clinics, "seconds": time.perf_counter() - started}

    def workers(self, count: int, timeout: float = 60) -> dict[str, Any]:
        """Wait until ``count`` RQ workers are registered (each host has started)."""
        import redis
        from rq import Worker

        connection = redis.Redis.from_url(os.environ["REDIS_URL"])
        deadline = time.monotonic() + timeout
        while (n := len(Worker.all(connection=connection))) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {n} of {count} workers registered in {timeout:.0f} s")
            time.sleep(0.3)
        return {"workers": n}

    def reset_provider(self) -> dict[str, Any]:
        self.provider.post("/_fake/reset").raise_for_status()
        self.seen = 0
        return {}

    def send(self, clinic: str, body: str) -> dict[str, Any]:
        """As the Bulk send page does it: sign in, review (dry run), confirm with the typed count."""
        from app.services import auth
        from app.services.bulk import wizard
        from db.enums import Channel
        from db.session import tenant_session

        admin = auth.authenticate(self.engine, f"{clinic}.admin", ADMIN_PASSWORD)
        draft = wizard.Draft(idempotency_key=wizard.new_draft_key(), audience={"kind": "all"},
                             channel=Channel.SMS, body_en=body)
        with tenant_session(self.engine, admin.tenant_id) as session:
            review = wizard.dry_run(session, admin, draft)
        pressed = time.monotonic()
        with tenant_session(self.engine, admin.tenant_id) as session:
            created = wizard.confirm(session, admin, draft, typed_count=review.audience_size)
        return {"job": str(created.bulk_job_id), "recipients": review.audience_size, "pressed": pressed,
                "returned": time.monotonic()}

    def wait_sends(self, count: int, timeout: float) -> dict[str, Any]:
        """Until the provider has received ``count`` message creates."""
        deadline = time.monotonic() + timeout
        creates = 0
        while creates < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {creates} of {count} sends reached the provider in {timeout:.0f} s")
            time.sleep(0.2)
            new = self.provider.get("/_fake/requests", params={"since": self.seen}).json()["requests"]
            self.seen += len(new)
            creates += sum(1 for r in new if r["endpoint"] == "messages.create")
        return {"at": time.monotonic(), "creates": creates}

    def _statuses(self, jobs: list[str]) -> Counter[str]:
        from sqlalchemy import text

        with self.owner.connect() as conn:
            rows = conn.execute(text("SELECT status, count(*) FROM messages WHERE bulk_job_id::text = ANY(:j) "
                                     "GROUP BY status"), {"j": jobs}).all()
        return Counter({status: n for status, n in rows})

    def _wait(self, jobs: list[str], total: int, states: tuple[str, ...], timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while True:
            statuses = self._statuses(jobs)
            if sum(statuses.values()) >= total and all(s in states for s in statuses):
                return time.monotonic()
            if time.monotonic() > deadline:
                raise RuntimeError(f"not all in {states} after {timeout:.0f} s: {dict(statuses)}")
            time.sleep(0.25)

    def deliver_reports(self, jobs: list[str]) -> dict[str, int]:
        """Each sent message reported ``delivered`` as Twilio reports it: the signed status callback
        (``tests.peers.fake_twilio.webhooks``) POSTed to the message's StatusCallback address, which is
        the callback host (PUBLIC_BASE_URL). Posted from here over kept-alive connections: the fake
        itself opens a new HTTP client for every callback, which would make it the slowest part."""
        from concurrent.futures import ThreadPoolExecutor

        import httpx
        from sqlalchemy import text

        from tests.peers.fake_twilio.webhooks import sign_webhook, status_callback_params

        with self.owner.connect() as conn:
            ours = set(conn.scalars(text("SELECT provider_message_id FROM messages WHERE status = 'sent' "
                                         "AND bulk_job_id::text = ANY(:j)"), {"j": jobs}))
        resources = [m for m in self.provider.get("/_fake/messages").json()["messages"] if m["sid"] in ours]
        token = os.environ["TWILIO_AUTH_TOKEN"]
        http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=16))

        def report(resource: dict[str, Any]) -> int:
            hook = sign_webhook(token, resource["_status_callback"], status_callback_params(resource, "delivered"))
            return http.post(hook.url, data=hook.params, headers=hook.headers).status_code

        try:
            with ThreadPoolExecutor(16) as pool:
                return dict(Counter(pool.map(report, resources)))
        finally:
            http.close()

    def wait_final(self, jobs: list[str], total: int, timeout: float, reports: bool = True) -> dict[str, Any]:
        """Until every message of these jobs was handed to the provider (read from the database); then
        (``reports``) the provider's delivery reports, until every message is final and the jobs completed."""
        from sqlalchemy import text

        handed = self._wait(jobs, total, HANDED_OVER, timeout)
        if not reports:
            return {"at": handed}
        delivered = self.deliver_reports(jobs)
        final = self._wait(jobs, total, FINAL, 120)
        ended = time.monotonic() + 60  # a maintenance pass ends each job once all its messages are final
        while time.monotonic() < ended:
            with self.owner.connect() as conn:
                states = set(conn.scalars(text("SELECT status FROM bulk_jobs WHERE id::text = ANY(:j)"), {"j": jobs}))
            if states == {"completed"}:
                break
            time.sleep(0.25)
        return {"at": handed, "final_at": final, "completed_at": time.monotonic(), "reports": delivered}

    def snapshot(self, jobs: list[str]) -> dict[str, Any]:
        return {"statuses": self._statuses(jobs)}

    def sessions_from(self, address: str, gone_by: float | None = None) -> dict[str, Any]:
        """The database sessions of clients at ``address``; with ``gone_by``, wait (until that
        monotonic time) for PostgreSQL to end them all."""
        from sqlalchemy import text

        while True:
            with self.owner.connect() as conn:
                n = conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE client_addr = CAST(:a AS inet)"),
                                {"a": address})
            if gone_by is None or n == 0 or time.monotonic() > gone_by:
                return {"sessions": n, "at": time.monotonic()}
            time.sleep(0.5)

    def report(self, jobs: list[str]) -> dict[str, Any]:
        """The database and the provider's own request log, side by side."""
        from sqlalchemy import text

        with self.owner.connect() as conn:
            rows = conn.execute(text(
                "SELECT m.id::text, m.tenant_id::text, m.body, m.status, m.provider_message_id, m.patient_id::text "
                "FROM messages m WHERE m.bulk_job_id::text = ANY(:j)"), {"j": jobs}).all()
            job_states = dict(conn.execute(text(
                "SELECT id::text, status FROM bulk_jobs WHERE id::text = ANY(:j)"), {"j": jobs}).all())
            events = Counter(dict(conn.execute(text(
                "SELECT l.event, count(*) FROM message_logs l JOIN messages m ON m.id = l.message_id "
                "WHERE m.bulk_job_id::text = ANY(:j) GROUP BY l.event"), {"j": jobs}).all()))
            audience = dict(conn.execute(text(
                "SELECT b.id::text, count(p.id) FROM bulk_jobs b JOIN patients p ON p.tenant_id = b.tenant_id "
                "WHERE b.id::text = ANY(:j) GROUP BY b.id"), {"j": jobs}).all())
        requests = self.provider.get("/_fake/requests").json()["requests"]
        creates = [r for r in requests if r["endpoint"] == "messages.create"]
        per_message: Counter[str] = Counter()
        created_sids: dict[str, str] = {}
        body_of: dict[str, str] = {}
        for r in creates:
            mid = r["params"].get("StatusCallback", "").rpartition("mid=")[2]
            per_message[mid] += 1
            body_of[mid] = r["params"].get("Body", "")
            if r["sid"]:
                created_sids[mid] = r["sid"]
        by_id = {row[0]: row for row in rows}
        twice = [mid for mid, n in per_message.items() if n > 1][:5]
        with self.owner.connect() as conn:
            histories = {mid: [f"{at:%H:%M:%S.%f} {event} {detail}" for event, at, detail in conn.execute(text(
                "SELECT event, created_at, detail FROM message_logs WHERE message_id::text = :m ORDER BY created_at"),
                {"m": mid})] for mid in twice}
        sends_of = {mid: [round(r["received_monotonic"], 2) for r in creates
                          if r["params"].get("StatusCallback", "").endswith(mid)] for mid in twice}
        per_patient = Counter((row[1], row[5]) for row in rows)
        sent = {row[0] for row in rows if row[3] in ("sent", "delivered", "read", "undelivered")}
        times = sorted(r["received_monotonic"] for r in creates)
        return {
            "messages": len(rows), "audience": sum(audience.values()),
            "statuses": Counter(row[3] for row in rows),
            "not_final": sum(1 for row in rows if row[3] not in FINAL),
            "not_sent": sum(1 for row in rows if row[3] not in HANDED_OVER),
            "requested_twice": sum(n - 1 for n in per_message.values() if n > 1),
            "sent_never_requested": len(sent - set(per_message)),
            "requested_not_ours": len(set(per_message) - set(by_id)),
            "wrong_clinic_or_body": sum(1 for mid, body in body_of.items() if mid in by_id and by_id[mid][2] != body),
            "sid_mismatch": sum(1 for mid, sid in created_sids.items() if mid in by_id and by_id[mid][4] != sid),
            "two_messages_one_patient": sum(n - 1 for n in per_patient.values() if n > 1),
            "lookups": sum(1 for r in requests if r["endpoint"] in ("messages.list", "messages.fetch")),
            "creates": len(creates), "first": times[0] if times else None, "last": times[-1] if times else None,
            "jobs": job_states, "events": events, "twice": {m: {"log": histories[m], "requests": sends_of[m]}
                                                          for m in twice},
        }


def app_host() -> None:
    """Serve the orchestrator's requests until stdin closes."""
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    app = App()
    for line in sys.stdin:
        request = json.loads(line)
        command = request.pop("command")
        try:
            answer = getattr(app, command)(**request)
        except Exception as exc:  # noqa: BLE001 - the orchestrator prints it and cleans up
            import traceback

            traceback.print_exc()
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(REPLY + json.dumps(answer, default=str), flush=True)


# ---------------------------------------------------------------------------------------------
# The runs
# ---------------------------------------------------------------------------------------------

def _rate(report: dict[str, Any]) -> float:
    return (report["creates"] - 1) / (report["last"] - report["first"])


def _check(report: dict[str, Any], label: str, *, reported: bool = True) -> list[str]:
    """What is wrong; ``reported``: the provider reported every message delivered (the loss run)."""
    problems = []
    if report["messages"] != report["audience"]:
        problems.append(f"{report['messages']} messages for {report['audience']} recipients")
    expected = "delivered" if reported else "sent"  # the fake accepts (and reports delivered) every one
    if report["statuses"].get(expected, 0) != report["messages"]:
        problems.append(f"not all {expected}: {dict(report['statuses'])}")
    if reported and set(report["jobs"].values()) != {"completed"}:
        problems.append(f"bulk jobs not completed: {sorted(set(report['jobs'].values()))}")
    for key in ("not_final" if reported else "not_sent", "requested_twice", "sent_never_requested",
                "requested_not_ours", "wrong_clinic_or_body", "sid_mismatch", "two_messages_one_patient"):
        if report[key]:
            problems.append(f"{key.replace('_', ' ')}: {report[key]}")
    return [f"{label}: {p}" for p in problems]


def throughput_run(machines: Machines, app: AppHost, args: argparse.Namespace, run: str,
                   hosts: list[str]) -> dict[str, Any]:
    app("reset_provider")
    env = worker_env(args)
    names = [n for host in hosts for n in machines.start_workers(host, args.workers_per_host, env, run)]
    try:
        app("workers", count=len(names))
        sent = app("send", clinic="alnoor", body=f"{run}: Al Noor Clinic: your appointment is tomorrow at 10:00.")
        done = app("wait_final", jobs=[sent["job"]], total=sent["recipients"], timeout=args.timeout, reports=False)
        report = app("report", jobs=[sent["job"]])
    finally:
        machines.stop(names)
    report["wall"] = done["at"] - sent["pressed"]
    report["rate"] = _rate(report)
    print(f"  {run}: {len(hosts)} worker host(s) × {args.workers_per_host} processes: "
          f"{report['creates']:,} messages at {report['rate']:.1f} msg/s at the provider "
          f"(send pressed -> all sent {report['wall']:.1f} s); load {os.getloadavg()[0]:.2f}", flush=True)
    return report


def loss_run(machines: Machines, app: AppHost, args: argparse.Namespace) -> dict[str, Any]:
    app("reset_provider")
    env = worker_env(args)
    names = [n for host in ("worker1", "worker2") for n in machines.start_workers(host, args.workers_per_host,
                                                                                    env, "loss")]
    survivors = [n for n in names if "-worker1-" in n]
    try:
        app("workers", count=len(names))
        jobs = [app("send", clinic="alnoor", body="Loss run: Al Noor Clinic: your appointment is tomorrow."),
                app("send", clinic="neighbour", body="Loss run: Neighbour Clinic: your appointment is tomorrow.")]
        total = sum(j["recipients"] for j in jobs)
        kill_at = app("wait_sends", count=int(total * args.kill_after), timeout=args.timeout)["creates"]
        killed_at, killed_wall = time.monotonic(), time.time()
        killed = machines.take_away("worker2")
        held = app("snapshot", jobs=[j["job"] for j in jobs])["statuses"]
        open_sessions = app("sessions_from", address=addr("worker2"))["sessions"]
        done = app("wait_final", jobs=[j["job"] for j in jobs], total=total, timeout=args.timeout + 600)
        report = app("report", jobs=[j["job"] for j in jobs])
        gone = app("sessions_from", address=addr("worker2"), gone_by=killed_at + 600)
    finally:
        machines.stop(survivors)
    report.update(total=total, kill_at=kill_at, killed_processes=killed, held=held,
                  recovery=done["at"] - killed_at, wall=done["at"] - jobs[0]["pressed"],
                  completed=done["completed_at"] - killed_at, dead_sessions=machines.dead_sessions(killed_wall),
                  open_sessions=open_sessions, sessions_left=gone["sessions"], sessions_gone=gone["at"] - killed_at)
    print(f"  loss: worker2 taken away after {kill_at:,} of {total:,} sends ({killed} processes killed; "
          f"at that moment {held.get('sending', 0)} sending, {held.get('queued', 0)} queued); every message "
          f"sent {report['recovery']:.1f} s later; after the delivery reports both jobs completed "
          f"{report['completed']:.1f} s after the loss; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=4000, help="SMS per run (default 4000)")
    parser.add_argument("--latency-ms", type=float, default=200, help="the provider's answer time (default 200)")
    parser.add_argument("--workers-per-host", type=int, default=2, help="python -m worker processes per host")
    parser.add_argument("--concurrency", type=int, default=8, help="DELIVERY_CONCURRENCY of each worker process")
    parser.add_argument("--sweep-after", type=float, default=25,
                        help="SWEEP_QUEUED_AFTER_SECONDS and SWEEP_SENDING_AFTER_SECONDS (default 25; "
                             "PROVIDER_TIMEOUT_SECONDS is 5, so a claim may start its request within 10 s)")
    parser.add_argument("--kill-after", type=float, default=0.3,
                        help="take worker2 away when this share of the sends reached the provider")
    parser.add_argument("--repeat", type=int, default=1,
                        help="one-host and two-host runs, alternated, this many times each (medians)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a run may take")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy every process's log here at the end")
    parser.add_argument("--app-host", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.app_host:
        app_host()
        return
    if os.geteuid() != 0:
        raise SystemExit("error: run as root (network namespaces): sudo .venv/bin/python bench/bench_multihost.py")
    sys.path.insert(0, str(ROOT))
    from app.delivery.queue import BATCH_SIZE

    jobs = -(-args.messages // BATCH_SIZE)  # a delivery job is the unit one worker process takes
    if jobs < 2 * args.workers_per_host:
        print(f"note: {args.messages:,} messages are {jobs} delivery jobs of {BATCH_SIZE} for "
              f"{2 * args.workers_per_host} worker processes on two hosts: too few to keep them all busy "
              f"(use --messages {2 * args.workers_per_host * BATCH_SIZE} or more)")

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    workdir = Path(tempfile.mkdtemp(prefix="bench-multihost-"))
    machines = Machines(workdir)
    failed = True
    try:
        load_before = os.getloadavg()
        machines.build()
        machines.start_postgres()
        machines.start_redis()
        machines.start_provider(args.latency_ms)
        app = AppHost(machines, app_env(args))
        machines.run_on("app", [str(PG_BIN / "createdb"), "-h", addr("db"), "-U", "postgres", "clinic"], base_env())
        setup = app("setup", patients=args.messages, neighbours=args.messages // 4)
        machines.start_callbacks(worker_env(args))
        print(f"hosts up on {SUBNET}.0/24 ({', '.join(f'{h} .{o}' for h, o in HOSTS.items())}); migrated, roles, "
              f"2 clinics and {args.messages + args.messages // 4:,} patients in {setup['seconds']:.1f} s; "
              f"provider latency {args.latency_ms:.0f} ms, {args.workers_per_host} worker processes per host × "
              f"DELIVERY_CONCURRENCY {args.concurrency}, no rate cap", flush=True)
        ones, twos, problems = [], [], []
        for i in range(args.repeat):  # alternated, so a change in the machine's load hits both alike
            ones.append(throughput_run(machines, app, args, f"one{i + 1}", ["worker1"]))
            twos.append(throughput_run(machines, app, args, f"two{i + 1}", ["worker1", "worker2"]))
            problems += (_check(ones[-1], f"one host, run {i + 1}", reported=False)
                         + _check(twos[-1], f"two hosts, run {i + 1}", reported=False))
        loss = loss_run(machines, app, args)
        problems += _check(loss, "host lost")
        one_rate, two_rate = statistics.median(r["rate"] for r in ones), statistics.median(r["rate"] for r in twos)
        ratio = two_rate / one_rate
        def rates(runs: list[dict[str, Any]]) -> str:
            return ", ".join(f"{r['rate']:.1f}" for r in runs)

        each = "" if args.repeat == 1 else (f"; median of {args.repeat}, alternated: one {rates(ones)}, "
                                            f"two {rates(twos)}")
        in_flight = args.workers_per_host * args.concurrency
        ideal = in_flight / (args.latency_ms / 1000) if args.latency_ms else float("nan")
        load = os.getloadavg()
        today = dt.date.today().isoformat()
        print()
        print("| workload | floor | result | ratio | date | load |")
        print("|---|---|---|---|---|---|")
        print(f"| `bench/bench_multihost.py`: {args.messages:,} SMS, worker hosts in their own network namespaces "
              f"({args.workers_per_host} × `python -m worker`, concurrency {args.concurrency} each), PostgreSQL, "
              f"Redis, app and loopback Twilio ({args.latency_ms:.0f} ms) on hosts of their own, no cap: two hosts "
              f"vs one (target ≥ 1.7×) | one host {one_rate:.1f} msg/s (its in-flight bound {ideal:.0f}) | "
              f"two hosts {two_rate:.1f} msg/s (bound {2 * ideal:.0f}){each} | {ratio:.2f} | {today} | "
              f"{load_before[0]:.2f} before, {load[0]:.2f} after |")
        print(f"| same, worker2 taken away (cable cut, every process SIGKILLed) after {loss['kill_at']:,} of "
              f"{loss['total']:,} sends (2 clinics with the same numbers), sweeper after {args.sweep_after:.0f} s | "
              f"— | every message sent {loss['recovery']:.1f} s after the loss (the lost host's "
              f"{loss['open_sessions']} database sessions ended by {loss['sessions_gone']:.0f} s), delivered and "
              f"both jobs completed {loss['completed']:.1f} s after it; {loss['requested_twice']} requested twice, "
              f"{loss['not_final']} not final, {len(problems)} problems | — | {today} | {load[0]:.2f} |")
        print()
        print(f"loss run: the lost host had {loss['open_sessions']} database sessions; PostgreSQL ended them "
              f"(open transactions rolled back, row locks freed) after at most {loss['sessions_gone']:.1f} s "
              f"({loss['sessions_left']} left; its log: silent clients dropped after {loss['dead_sessions']} s)")
        print(f"loss run: statuses {dict(loss['statuses'])}; lookups at the provider {loss['lookups']}; "
              f"message log events {dict(loss['events'])}; jobs {sorted(set(loss['jobs'].values()))}")
        for problem in problems:
            print("PROBLEM:", problem)
        for report in [*ones, *twos, loss]:
            for mid, seen in report["twice"].items():
                print(f"requested twice: message {mid}: requests at {seen['requests']}; its log: {seen['log']}")
        failed = bool(problems)
        if ratio < 1.7:
            print(f"below target: two hosts {ratio:.2f}× one (target 1.7×)")
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc or 'Ctrl-C'}); cleaning up", file=sys.stderr)
    finally:
        machines.close()
        if args.keep_logs or failed:
            target = args.keep_logs or Path(tempfile.gettempdir()) / f"bench-multihost-logs-{os.getpid()}"
            shutil.copytree(machines.logs, target, dirs_exist_ok=True)
            print(f"logs: {target}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(machines.pg_data, ignore_errors=True)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
