"""Run the fake as its own process: ``python -m tests.peers.fake_twilio`` and FakeTwilioProcess to start it."""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.peers._threaded import bind_loopback
from tests.peers.fake_twilio.app import FakeTwilioApp
from tests.peers.fake_twilio.remote import FakeTwilioRemote
from tests.peers.fake_twilio.store import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, State

REPO_ROOT = Path(__file__).resolve().parents[3]


class FakeTwilioProcess:
    """Start `python -m tests.peers.fake_twilio` as a child process; `.remote` controls it."""

    def __init__(
        self,
        *,
        latency_ms: float = 0,
        port: int = 0,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        hang_s: float = 30.0,
        python: str = sys.executable,
        start_timeout: float = 20.0,
    ) -> None:
        self.argv = [
            python, "-m", "tests.peers.fake_twilio", "--port", str(port), "--latency-ms", str(latency_ms),
            "--account-sid", account_sid, "--auth-token", auth_token, "--hang-s", str(hang_s),
        ]  # fmt: skip
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.remote: FakeTwilioRemote | None = None

    def __enter__(self) -> FakeTwilioProcess:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        self.proc = subprocess.Popen(self.argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        while not self.base_url:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(remaining, 0))
            if not ready:
                self.__exit__()
                raise TimeoutError(f"fake Twilio process did not start within {self.start_timeout}s")
            line = self.proc.stdout.readline()
            if not line:
                code = self.proc.wait()
                raise RuntimeError(f"fake Twilio process exited with {code} before listening")
            if line.startswith("FAKE_TWILIO_URL="):
                self.base_url = line.strip().split("=", 1)[1]
        self.remote = FakeTwilioRemote(self.base_url, self.account_sid, self.auth_token)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.remote is not None:
            self.remote.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


def main(argv: list[str] | None = None) -> None:
    """Serve a fake Twilio until SIGINT/SIGTERM; prints FAKE_TWILIO_URL=... once listening."""
    import uvicorn

    parser = argparse.ArgumentParser(
        prog="python -m tests.peers.fake_twilio",
        description="A loopback HTTP server that answers like Twilio's REST API.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 = any free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--hang-s", type=float, default=30.0)
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    parser.add_argument("--no-validate", action="store_true", help="skip the To/From/Body checks")
    args = parser.parse_args(argv)

    state = State(args.account_sid, args.auth_token, args.latency_ms, args.hang_s, not args.no_validate)
    app = FakeTwilioApp(state)
    sock = bind_loopback(args.host, args.port)
    config = uvicorn.Config(
        app,
        http="h11",
        interface="asgi3",
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,
        backlog=2048,
    )
    server = uvicorn.Server(config)
    print(f"FAKE_TWILIO_URL=http://{args.host}:{sock.getsockname()[1]}", flush=True)
    asyncio.run(server.serve(sockets=[sock]))
