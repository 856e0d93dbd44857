"""The embedded queue's stop: running jobs finish, nothing else runs afterwards."""

from __future__ import annotations

import threading
import time

from app.delivery.queue import InProcessQueue

STARTED = threading.Event()
RELEASE = threading.Event()
RAN: list[str] = []


def slow_job(name: str) -> None:
    STARTED.set()
    RELEASE.wait(5)
    time.sleep(0.05)
    RAN.append(name)


def quick_job(name: str) -> None:
    RAN.append(name)


def test_close_lets_running_jobs_finish_and_drops_the_rest() -> None:
    RAN.clear()
    STARTED.clear()
    RELEASE.clear()
    queue = InProcessQueue(workers=1)
    queue.enqueue(f"{__name__}.slow_job", "running")
    assert STARTED.wait(5)
    queue.enqueue(f"{__name__}.quick_job", "waiting")  # behind the running one in the pool
    queue.enqueue(f"{__name__}.quick_job", "delayed", delay_seconds=0.2)

    closing = threading.Thread(target=queue.close)  # returns once the running job is done
    closing.start()
    time.sleep(0.5)  # the close has dropped what waits; the running job still holds on
    assert closing.is_alive()
    RELEASE.set()
    closing.join(5)

    assert not closing.is_alive() and RAN == ["running"]
    queue.enqueue(f"{__name__}.quick_job", "after")
    time.sleep(0.4)
    assert RAN == ["running"]
