"""Who sees patients' phone numbers and e-mail addresses whole, and how the others see them."""

from __future__ import annotations

from app.phones import mask_phone
from app.services.permissions import Actor
from db.enums import Role


def sees_full_contacts(actor: Actor) -> bool:
    """Admins and front desk always; analysts only when an admin granted them full access."""
    return actor.role != Role.ANALYST or actor.can_view_full_contacts


def mask_email(address: str) -> str:
    """``sara@example.com`` -> ``s***@example.com``."""
    local, at, domain = address.partition("@")
    if not at:
        return "*" * len(address)
    return f"{local[:1]}***@{domain}"


def mask_contact(value: str | None) -> str | None:
    """A phone number or an e-mail address, masked (None stays None)."""
    if not value:
        return value
    return mask_email(value) if "@" in value else mask_phone(value)


def shown_contact(actor: Actor, value: str | None) -> str | None:
    """``value`` as ``actor`` may see it."""
    return value if sees_full_contacts(actor) else mask_contact(value)
