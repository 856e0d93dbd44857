"""A lean asyncio HTTP/1.1 load generator for checking the fake's own capacity.

httpx and the SDK (requests) cost more CPU per request than the fake does, so measuring the
fake with them measures the client. `blast` opens `concurrency` keep-alive connections and
sends message-create POSTs over them as fast as answers come back.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlparse

from tests.peers.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN


@dataclass
class LoadResult:
    """Outcome of one blast: how many, how long, which HTTP statuses."""

    total: int
    elapsed_s: float
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.total / self.elapsed_s if self.elapsed_s else float("inf")


async def _connection(host: str, port: int, path: str, auth: str, indexes: range, statuses: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for i in indexes:
            body = urlencode({"To": f"+1500{i:07d}", "From": "+15005550001", "Body": "load test"}).encode()
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Basic {auth}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
            response_head = await reader.readuntil(b"\r\n\r\n")
            status = int(response_head.split(b" ", 2)[1])
            length = 0
            for line in response_head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def ablast(
    base_url: str,
    total: int,
    concurrency: int,
    account_sid: str = DEFAULT_ACCOUNT_SID,
    auth_token: str = DEFAULT_AUTH_TOKEN,
) -> LoadResult:
    """Send `total` creates over `concurrency` connections; returns count, time and statuses."""
    url = urlparse(base_url)
    assert url.hostname is not None and url.port is not None
    path = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
    auth = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
    statuses: dict[int, int] = {}
    start = time.monotonic()
    await asyncio.gather(
        *(
            _connection(url.hostname, url.port, path, auth, range(k, total, concurrency), statuses)
            for k in range(min(concurrency, total))
        )
    )
    return LoadResult(total, time.monotonic() - start, statuses)


def blast(
    base_url: str,
    total: int,
    concurrency: int,
    account_sid: str = DEFAULT_ACCOUNT_SID,
    auth_token: str = DEFAULT_AUTH_TOKEN,
) -> LoadResult:
    """Synchronous `ablast` (runs its own event loop)."""
    return asyncio.run(ablast(base_url, total, concurrency, account_sid, auth_token))
