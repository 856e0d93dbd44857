"""One calling convention: every use case is ``fn(session, actor, ...)``, and pages reach them only
through ``app.ui.session.call`` (or ``feedback.service``, which uses it).

Read from the source (no imports, no database): a page that opens a unit of work, imports the
database layer or enqueues a job fails here, and so does a public service function that takes a
session but no actor, unless it is on the allow-list below with the reason it needs none.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "pages").glob("*.py"))
SERVICES_DIR = ROOT / "app" / "services"
SERVICES = sorted(SERVICES_DIR.rglob("*.py"))

# db.enums is the shared vocabulary (channels, statuses, roles): plain enums, no database access.
PAGE_DB_IMPORTS_ALLOWED = {"db.enums"}

# Public functions that take a session but no actor: pure helpers a use case calls after its own
# role check (never called by a page), and the cross-clinic entries that run before anyone is in
# a clinic. Each says why.
NO_ACTOR: dict[str, str] = {
    "bulk.audience.clinic_tags": "helper of bulk.wizard.options (which checks the role)",
    "bulk.audience.count": "helper of bulk.wizard.confirm",
    "bulk.expansion.content_of": "the worker's expansion job (runs for the job's clinic, no staff member)",
    "bulk.expansion.lock_job": "a row lock shared by the expansion and bulk.jobs (whose callers check the role)",
    "bulk.plan.plan": "shared by bulk.wizard.dry_run and the worker's expansion",
    "bulk.jobs.status_counts": "the job counters' one read, shared by bulk.jobs and analytics after their checks",
    "bulk.plan.plan_grouped": "helper of bulk.wizard.dry_run",
    "bulk.wizard.active_templates": "helper of bulk.wizard.options",
    "bulk.wizard.content": "helper of bulk.wizard.dry_run and confirm",
    "bulk.wizard.clinic_time_to_utc": "helper of bulk.wizard.confirm",
    "explorer.resolve_search": "helper of the explorer's read functions",
    "explorer.clinic_of": "helper of the explorer's read functions",
    "explorer.build_query": "helper of the explorer's and the export's read functions",
    "explorer.read_page": "helper of explorer.list_messages",
    "message_export.write_csv": "shared by message_export.export_csv and the background export job",
    "message_content.patient_variables": "rendering helper of messaging.send",
    "messaging.rendered_again": "rendering helper of patients.change_contacts (after its check), as send renders",
    "queueing.use_queue": "attaches a queue to a session (callers and tests)",
    "reminders.planner.plan": "re-plans reminders after a change its caller made and checked (intake, replies, "
                              "rules, the maintenance pass)",
    "reminders.planner.clinic_hours": "the clinic's calendar, read by the planner and by reminder services after "
                                      "their checks",
    "queueing.queue_of": "the queue a use case enqueues on",
    "queueing.deliver_after_commit": "registers delivery jobs for after the commit",
    "queueing.enqueue_after_commit": "registers a job for after the commit",
    "tenants.create_tenant": "cross-clinic (system_session): the command line and the seeder create clinics",
    "tenants.get_by_slug": "cross-clinic (system_session): sign-in and the command line find a clinic",
    "tenants.get_clinic": "the clinic of the session, read by other services after their check",
    "tenants.current": "the session's clinic, the one lookup the use cases make after their check",
    "whatsapp_templates.ensure_sendable_in_bulk": "helper of the bulk wizard's template check",
}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _module(path: Path) -> str:
    """A service module's name below ``app.services``: ``messaging``, ``bulk.wizard``."""
    parts = path.relative_to(SERVICES_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# Pages whose cached reads still open their own unit of work, until the one cache decorator keyed by
# clinic and role (app/ui/cached.py) takes them over (issue 17, "one cache decorator").
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_a_page_never_opens_a_session_imports_the_database_or_enqueues(page: Path) -> None:
    problems: list[str] = []
    for node in ast.walk(_tree(page)):
        if isinstance(node, ast.Import):
            problems += [f"line {node.lineno}: import {a.name}" for a in node.names
                         if a.name.split(".")[0] == "db" and a.name not in PAGE_DB_IMPORTS_ALLOWED]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "db" and node.module not in PAGE_DB_IMPORTS_ALLOWED:
                problems.append(f"line {node.lineno}: from {node.module} import ...")
            if node.module in ("app.delivery.dispatch", "app.delivery.runtime", "app.services.queueing"):
                problems.append(f"line {node.lineno}: from {node.module} import ... (jobs are the services' job)")
        elif isinstance(node, ast.Name) and node.id in ("tenant_session", "system_session"):
            problems.append(f"line {node.lineno}: {node.id} (call services with session.call)")
        elif isinstance(node, ast.Attribute) and node.attr in ("tenant_session", "system_session", "enqueue",
                                                                "enqueue_batches"):
            problems.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "enqueue":
            problems.append(f"line {node.lineno}: enqueue(...)")
    assert problems == [], f"{page.name} reaches below the service layer:\n" + "\n".join(problems)


def _session_first_functions() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in SERVICES:
        for node in _tree(path).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                names = [a.arg for a in node.args.posonlyargs + node.args.args]
                if names and names[0] == "session":
                    found[f"{_module(path)}.{node.name}"] = names
    return found


def test_every_use_case_takes_the_session_then_the_actor() -> None:
    functions = _session_first_functions()
    without = {name for name, args in functions.items() if args[1:2] != ["actor"]}
    assert without - set(NO_ACTOR) == set(), (
        "these take a session but no actor second: make it fn(session, actor, ...), or add it to "
        "NO_ACTOR with the reason")
    assert set(NO_ACTOR) - without == set(), "NO_ACTOR lists functions that take an actor or no longer exist"


def test_no_service_takes_an_engine_or_a_queue_first() -> None:
    """The older shapes (``engine, queue, actor``; ``service, actor``) are gone from the use cases."""
    old = []
    for path in SERVICES:
        for node in _tree(path).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                names = [a.arg for a in node.args.args]
                if names[:2] in (["engine", "queue"], ["service", "actor"]):
                    old.append(f"{_module(path)}.{node.name}")
    assert old == []


def test_an_actor_is_never_optional_in_a_use_case() -> None:
    """(``audit.record`` is not a use case: it writes one event, also for the worker and sign-in.)"""
    optional = []
    for path in SERVICES:
        for node in _tree(path).body:
            if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
                continue
            if path.stem.startswith("audit") and node.name == "record":
                continue
            args = node.args.args
            if len(args) >= 2 and args[0].arg == "session" and args[1].arg == "actor":
                if args[1].annotation is not None and "None" in ast.unparse(args[1].annotation):
                    optional.append(f"{_module(path)}.{node.name}")
    assert optional == [], "an integration passes a named actor (Actor.system), never None"
