"""A user of clinic B never sees clinic A's objects through any service read (NotFound or nothing).

``READS`` is the table: how to ask for clinic A's objects as clinic B's admin (who holds every
permission, so only the clinic boundary can refuse), and what must hold of the answer. Writes
that name clinic A's objects are covered too: they must find nothing to change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from app.errors import NotFoundError
from app.services import audit_log, overview, staff, templates, tenants
from db.enums import Role
from tests.security.conftest import World


@dataclass(frozen=True)
class Read:
    name: str
    ask: Callable[[World], Any]  # as clinic B's admin, about clinic A's objects
    sees_nothing_of_a: Callable[[World, Any], bool] = lambda w, result: True  # NotFound also passes


def _b(world: World, fn: Callable, *args: Any, **kwargs: Any) -> Any:  # type: ignore[type-arg]
    return world.call(fn, world.b.admin, *args, **kwargs)


def _a_ids(world: World) -> set[str]:
    return {str(i) for i in (world.a.tenant_id, world.a.admin.user_id, world.a.front_desk.user_id,
                             world.a.analyst.user_id, world.a.patient_id, world.a.template_id)}


READS: list[Read] = [
    Read("staff.list_staff", lambda w: _b(w, staff.list_staff),
         lambda w, r: {m.id for m in r} == {w.b.admin.user_id, w.b.front_desk.user_id, w.b.analyst.user_id}),
    Read("templates.list_templates", lambda w: _b(w, templates.list_templates),
         lambda w, r: w.a.template_id not in {t.id for t in r}),
    Read("templates.get_template", lambda w: _b(w, templates.get_template, w.a.template_id)),
    Read("templates.get_version", lambda w: _b(w, templates.get_version, w.a.template_id, 1)),
    Read("templates.diff_versions", lambda w: _b(w, templates.diff_versions, w.a.template_id, 1, 1)),
    Read("templates.template_usage", lambda w: _b(w, templates.template_usage, w.a.template_id)),
    Read("templates.preview", lambda w: _b(w, templates.preview, w.a.template_id)),
    Read("templates.test_send", lambda w: templates.test_send(w.engine, w.queue, w.b.admin, w.a.template_id,
                                                              recipient="+966501112233")),
    Read("overview.headline", lambda w: _b(w, overview.headline),
         lambda w, r: (r.patients, r.staff, r.messages_7d) == (1, 3, 0)),
    Read("tenants.get_clinic", lambda w: w.call(lambda s, _a: tenants.get_clinic(s), w.b.admin),
         lambda w, r: r.slug == "clinic-b"),
    Read("audit_log.search", lambda w: _b(w, audit_log.search, limit=500),
         lambda w, r: not _a_ids(w) & {str(v) for e in r.entries for v in (e.object_id, e.actor_id)}
         and all(e.actor_name.startswith(("b.", "system", "command")) for e in r.entries)),
    Read("audit_log.choices", lambda w: _b(w, audit_log.choices),
         lambda w, r: not {w.a.admin.user_id, w.a.front_desk.user_id} & set(r.users)),
    Read("audit_log.export_csv", lambda w: _b(w, audit_log.export_csv),
         lambda w, r: not any(i in r.decode("utf-8") for i in _a_ids(w)) and b"a.admin" not in r),
    Read("MessagingService.bulk_job_counts", lambda w: w.messaging.bulk_job_counts(w.b.tenant_id, w.bulk_job()),
         lambda w, r: r == {}),
    Read("MessagingService.send_message (A's patient)", lambda w: w.messaging.send_message(
        w.b.tenant_id, "SMS", patient_id=w.a.patient_id, text="Hello", actor=w.b.admin)),
    Read("MessagingService.send_message (A's template)", lambda w: w.messaging.send_message(
        w.b.tenant_id, "SMS", recipient="+966501112233", template_code="reminder-a", actor=w.b.admin)),
    Read("MessagingService.retry (A's message)", lambda w: w.messaging.retry(
        w.b.tenant_id, [w.failed_message()], actor=w.b.admin)),
    Read("MessagingService.cancel (A's message)", lambda w: w.messaging.cancel(
        w.b.tenant_id, message_ids=[w.queued_message()], actor=w.b.admin), lambda w, r: r == 0),
    Read("MessagingService.cancel (A's bulk job)", lambda w: w.messaging.cancel(
        w.b.tenant_id, bulk_job_id=w.bulk_job(), actor=w.b.admin)),
    Read("staff.change_role (A's user)", lambda w: _b(w, staff.change_role, w.a.analyst.user_id, Role.ADMIN)),
    Read("staff.reset_password (A's user)", lambda w: _b(w, staff.reset_password, w.a.analyst.user_id,
                                                         "a-new-long-password")),
    Read("templates.update_template (A's template)", lambda w: _b(w, templates.update_template, w.a.template_id,
                                                                  body_en="Hijacked")),
    Read("templates.delete_template (A's template)", lambda w: _b(w, templates.delete_template,
                                                                  w.a.template_id)),
]


@pytest.mark.parametrize("read", READS, ids=lambda r: r.name)
def test_clinic_b_never_sees_or_touches_clinic_a(world: World, read: Read) -> None:
    w = world
    _give_a_template_only_a_has(w)
    try:
        result = read.ask(w)
    except NotFoundError:
        result = None
    else:
        assert read.sees_nothing_of_a(w, result), f"{read.name} showed clinic B something of clinic A: {result!r}"
    # Clinic A's own view is untouched.
    detail = w.call(templates.get_template, w.a.admin, w.a.template_id)
    assert (detail.current_version, detail.is_active) == (1, True) and "Hijacked" not in detail.body_en
    assert {m.username: m.role for m in w.call(staff.list_staff, w.a.admin)} == {
        "a.admin": Role.ADMIN, "a.desk": Role.FRONT_DESK, "a.analyst": Role.ANALYST}


def _give_a_template_only_a_has(world: World) -> None:
    world.call(templates.create_template, world.a.admin, code="reminder-a", name="Only A", channel="SMS",
               body_en="Only clinic A")
