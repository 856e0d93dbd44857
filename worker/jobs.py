"""RQ job functions. Arguments are ids and provider statuses only (JSON), never patient data."""

from __future__ import annotations

import uuid

from app.delivery import sender
from app.delivery.callbacks import apply_provider_status as _apply
from app.delivery.runtime import get_runtime
from app.services import maintenance
from db.enums import MessageStatus

DETACH_TAIL = False  # the RQ worker process (python -m worker) sets it: see sender.deliver_batch


def deliver(job_id: str, message_ids: list[str]) -> dict[str, int]:
    """Send each of these messages that is still waiting (keeping the job's heartbeat meanwhile)."""
    return sender.deliver_batch(get_runtime(), message_ids, job_id, detach_tail=DETACH_TAIL)


def apply_provider_status(provider_message_id: str, message_id: str, status: str, error_code: str | None) -> str:
    """A status report played back by the dev outbox (production reports arrive on the webhook)."""
    return _apply(get_runtime().engine, provider_message_id=provider_message_id, status=MessageStatus(status),
                  error_code=error_code, message_id=uuid.UUID(message_id), provider="dev", source="playback")


def sweep() -> dict[str, int]:
    report = maintenance.run_pass(get_runtime())
    return {k: v for k, v in vars(report).items() if isinstance(v, int)}


def expand_bulk_job(bulk_job_id: str) -> dict[str, int]:
    """Turn a bulk job's audience into message rows and enqueue them (see app.services.bulk)."""
    from app.services.bulk.expansion import expand

    return expand(get_runtime(), uuid.UUID(bulk_job_id))


def export_messages(tenant_id: str, export_id: str) -> int:
    """Write a background CSV export to its gzip file (see app.services.message_export)."""
    from app.services.message_export import run_export

    return run_export(get_runtime().engine, uuid.UUID(tenant_id), uuid.UUID(export_id))


def noop() -> None:
    """Does nothing: the benchmark's floor for what one RQ job costs."""
