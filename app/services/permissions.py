"""Who may do what. One table; every service call checks it, so a page cannot leak by omission."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.errors import PermissionDenied
from db.enums import Role
from db.tenancy import TenantScopeError, TenantSession
from db.types import StrEnum


class Permission(StrEnum):
    VIEW_DASHBOARD = "view_dashboard"
    VIEW_MESSAGES = "view_messages"
    SEND_MESSAGES = "send_messages"
    RETRY_MESSAGES = "retry_messages"
    BULK_SEND = "bulk_send"
    VIEW_PATIENTS = "view_patients"
    EDIT_PREFERENCES = "edit_preferences"
    VIEW_TEMPLATES = "view_templates"
    MANAGE_TEMPLATES = "manage_templates"
    VIEW_ANALYTICS = "view_analytics"
    EXPORT_DATA = "export_data"
    MANAGE_STAFF = "manage_staff"
    MANAGE_SETTINGS = "manage_settings"
    PAUSE_SENDING = "pause_sending"
    VIEW_AUDIT = "view_audit"
    VIEW_APPOINTMENTS = "view_appointments"
    IMPORT_APPOINTMENTS = "import_appointments"
    MANAGE_REMINDERS = "manage_reminders"  # reminder rules, the clinic calendar, the appointments API's keys
    WORK_INBOX = "work_inbox"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.FRONT_DESK: frozenset(
        {
            Permission.VIEW_DASHBOARD,
            Permission.VIEW_MESSAGES,
            Permission.SEND_MESSAGES,
            Permission.RETRY_MESSAGES,
            Permission.VIEW_PATIENTS,
            Permission.EDIT_PREFERENCES,
            Permission.VIEW_TEMPLATES,
            Permission.VIEW_APPOINTMENTS,
            Permission.WORK_INBOX,
        }
    ),
    Role.ANALYST: frozenset(
        {
            Permission.VIEW_DASHBOARD,
            Permission.VIEW_MESSAGES,
            Permission.VIEW_TEMPLATES,
            Permission.VIEW_ANALYTICS,
            Permission.EXPORT_DATA,
        }
    ),
}


@dataclass(frozen=True)
class Actor:
    """Who a service runs for: a signed-in staff member, or a named integration (``Actor.system``).

    Every use case takes one and checks its role; there is no "no actor" that skips the check.
    """

    user_id: uuid.UUID | None  # None only for a named integration (no staff account)
    tenant_id: uuid.UUID
    username: str
    display_name: str
    role: Role
    tenant_name: str = ""
    can_view_full_contacts: bool = False
    session_epoch: int = 0  # the account's epoch at sign-in; a reset, deactivation or role change moves it

    @classmethod
    def system(cls, tenant_id: uuid.UUID, *, name: str, role: Role = Role.ADMIN) -> Actor:
        """A named integration acting in one clinic: the command line, the demo seeder, a script
        using ``MessagingService``, an HTTP API client. It has no staff account; it is checked
        against ``role`` like anyone, and the audit log records it under ``name``."""
        if not name.strip():
            raise ValueError("a system actor needs a name (the audit log shows it)")
        return cls(user_id=None, tenant_id=tenant_id, username=name, display_name=name, role=role)

    @property
    def is_system(self) -> bool:
        return self.user_id is None

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


def authorize(session: TenantSession, actor: Actor, permission: Permission) -> None:
    """Refuse unless ``actor``'s role grants ``permission`` and ``session`` is bound to its clinic."""
    if session.tenant_id != actor.tenant_id:
        raise TenantScopeError("the session is not bound to the actor's clinic")
    if not actor.can(permission):
        raise PermissionDenied(
            f"Your role ({actor.role.label}) does not allow this ({permission.value.replace('_', ' ')})."
        )
