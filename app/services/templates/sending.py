"""A test send: a template's current version to one recipient the staff member types, through the
real delivery pipeline and marked as a test (statistics leave it out)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from app.services import messaging
from app.services.messaging import SendResult
from app.services.permissions import Actor, Permission, authorize
from app.services.templates.checks import sample_values, used_variables
from app.services.templates.reading import _get, _version_row
from db.enums import Channel, Language
from db.tenancy import TenantSession


def test_send(
    session: TenantSession, actor: Actor, template_id: uuid.UUID, *, recipient: str,
    language: Language | str | None = None, sample_values_override: Mapping[str, Any] | None = None,
) -> SendResult:
    """Send the template's current version to ``recipient`` (a number or e-mail the staff member
    types) through the real delivery pipeline (``messaging.send``), marked ``is_test`` so
    statistics leave it out; its delivery job is enqueued after the session commits.

    The template must be active (like any send). The clinic's name and phone come from the
    clinic unless ``sample_values_override`` gives others; other variables get sample data.
    """
    authorize(session, actor, Permission.MANAGE_TEMPLATES)
    template = _get(session, template_id)
    current = _version_row(session, template, template.current_version)
    code, channel = template.code, Channel(template.channel)
    requested = Language(language) if language else None
    used: set[str] = set()
    for source in (current.body_en, current.body_ar, current.subject_en, current.subject_ar):
        used |= used_variables(source)
    sample_language = requested or Language.EN
    values = sample_values(sample_language, used, sample_values_override)
    # The clinic's own name and phone come from the clinic, unless the staff member typed others.
    given = dict(sample_values_override or {})
    variables = {k: v for k, v in values.items()
                 if k in used and (k not in ("clinic_name", "clinic_phone") or k in given)}
    return messaging.send(session, actor, channel, recipient=recipient, template_code=code, variables=variables,
                          language=requested, is_test=True)


test_send.__test__ = False  # type: ignore[attr-defined]  # not a pytest test, whatever imports it
