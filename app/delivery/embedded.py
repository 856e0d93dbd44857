"""The embedded default's delivery: the same jobs and sweeper, run on threads of the app's process.

Used when ``REDIS_URL`` is not set (``make run``). Production runs ``python -m worker`` instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from app.delivery.runtime import Runtime, get_runtime

log = logging.getLogger(__name__)
_lock = threading.Lock()
_thread: threading.Thread | None = None


def start_embedded_worker(maintenance: Callable[[Runtime], object], runtime: Runtime | None = None) -> bool:
    """Run ``maintenance(runtime)`` (the periodic pass) on a thread of this process, once per process;
    False when a Redis worker should be used."""
    global _thread
    runtime = runtime or get_runtime()
    if not runtime.embedded or not runtime.settings.embedded_worker:
        return False
    with _lock:
        if _thread is not None and _thread.is_alive():
            return True

        def loop() -> None:
            stop = threading.Event()
            while not stop.wait(runtime.settings.sweep_interval_seconds):
                try:
                    maintenance(runtime)
                except Exception:  # keep delivering; the next pass retries
                    log.exception("embedded sweep failed")

        _thread = threading.Thread(target=loop, name="embedded-sweeper", daemon=True)
        _thread.start()
    return True
