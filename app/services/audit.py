"""Audit events: who did what to which object, when. Insert-only."""

from __future__ import annotations

import uuid
from typing import Any

from app.services.permissions import Actor
from db.models import AuditEvent
from db.tenancy import TenantSession


def record(
    session: TenantSession,
    actor: Actor | None,
    action: str,
    *,
    object_type: str | None = None,
    object_id: uuid.UUID | str | None = None,
    details: dict[str, Any] | None = None,
    tenant_id: uuid.UUID | None = None,
    actor_name: str | None = None,
) -> None:
    """Add one audit event to the session's unit of work (committed with the change itself)."""
    session.add(
        AuditEvent(
            tenant_id=tenant_id or (actor.tenant_id if actor else session.tenant_id),
            actor_id=actor.user_id if actor else None,
            actor_name=actor_name if actor_name is not None else (actor.username if actor else "system"),
            action=action,
            object_type=object_type,
            object_id=str(object_id) if object_id is not None else None,
            details=details or {},
        )
    )
