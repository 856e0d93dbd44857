"""``python -m worker``: an RQ worker for deliveries, with the scheduler and the periodic sweeper.

Run several (on several machines) for throughput; the rate limits are shared through Redis and
only one sweeper pass runs at a time (a Redis lock).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

from app.config import get_settings
from app.delivery.runtime import get_runtime, redis_connection
from app.errors import AppError
from app.services import maintenance

log = logging.getLogger("worker")
SWEEP_LOCK = "clinic:sweeper-lock"


def sweep_forever(stop: threading.Event) -> None:
    runtime = get_runtime()
    interval = runtime.settings.sweep_interval_seconds
    connection = redis_connection(runtime.settings.redis_url) if runtime.settings.redis_url else None
    while not stop.wait(interval):
        try:
            lock = f"{SWEEP_LOCK}:{runtime.settings.rq_queue}"
            if connection is not None and not connection.set(lock, "1", nx=True,
                                                             px=int(interval * 1000 * 2)):
                continue
            report = maintenance.run_pass(runtime)
            if any((report.promoted, report.enqueued, report.recovered_sending, report.settled_unknown,
                    report.resumed_expansions)):
                log.info("sweep: %s", {k: v for k, v in vars(report).items() if isinstance(v, int) and v})
        except Exception:  # keep sweeping; the next pass retries
            log.exception("sweep failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker", description="Delivery worker (RQ).")
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--no-sweeper", action="store_true", help="do not run the periodic sweeper in this worker")
    parser.add_argument("--name", default=None, help="worker name (default: host and pid)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("twilio").setLevel(logging.WARNING)  # it logs request parameters: patient data
    try:
        settings = get_settings()
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not settings.redis_url:
        print("error: REDIS_URL is not set; without Redis, deliveries run inside the app (make run).",
              file=sys.stderr)
        return 1
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    connection = redis_connection(settings.redis_url)
    stop = threading.Event()
    if not args.no_sweeper:
        threading.Thread(target=sweep_forever, args=(stop,), name="sweeper", daemon=True).start()
    # SimpleWorker runs jobs in this process: forking a work horse while the sweeper and the
    # database pool have threads and open connections is unsafe.
    worker = SimpleWorker([settings.rq_queue], connection=connection, serializer=JSONSerializer, name=args.name)
    from worker import jobs

    jobs.DETACH_TAIL = True  # a job's last answers are awaited beside the next job (sender.deliver_batch)
    try:
        worker.work(with_scheduler=True, burst=args.burst, logging_level="WARNING")
    finally:
        stop.set()
        time.sleep(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
