"""Operator commands: migrate, seed-demo, rebuild-rollups, create-tenant, create-user.

Every failure is one clear line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from app.errors import AppError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _engine():  # type: ignore[no-untyped-def]
    from app.database import get_engine

    return get_engine()


def _owner_engine():  # type: ignore[no-untyped-def]
    """The tables' owner (MIGRATION_DATABASE_URL), for migrations and roles; DATABASE_URL when unset."""
    from app.config import get_settings
    from app.database import engine_for

    settings = get_settings()
    return engine_for(settings.migration_database_url or settings.database_url)


def cmd_migrate(args: argparse.Namespace) -> int:
    from db.migrate import current_revision, upgrade

    engine = _owner_engine()
    upgrade(engine)
    print(f"Database is at migration {current_revision(engine)} ({engine.url.render_as_string(hide_password=True)}).")
    return EXIT_OK


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from app.demo import DEMO_LOGINS, seed_demo
    from db.migrate import upgrade

    engine = _owner_engine()
    upgrade(engine)
    report = seed_demo(engine, messages=args.messages, progress=lambda line: print(line, flush=True))
    if getattr(report, "already_present", False):
        print("Demo clinics already exist; nothing to do.")
    else:
        print(
            f"Seeded {len(report.tenants)} clinics, {report.patients:,} patients, {report.appointments:,} "
            f"appointments, {report.templates} templates, {report.messages:,} messages "
            f"({report.message_logs:,} events) in {report.seconds:.1f} s "
            f"({report.messages_per_second:,.0f} messages/s)."
        )
    print("Demo logins:")
    for slug, username, password, role in DEMO_LOGINS:
        print(f"  {slug:<16} {role:<11} {username:<22} {password}")
    return EXIT_OK


def cmd_rebuild_rollups(args: argparse.Namespace) -> int:
    import time

    from app.analytics import rollups
    from app.services import tenants
    from db.session import system_session

    engine = _engine()
    tenant_id = None
    if args.tenant:
        with system_session(engine) as session:
            tenant_id = tenants.get_by_slug(session, args.tenant).id
    started = time.perf_counter()
    rows = rollups.rebuild(engine, tenant_id=tenant_id)
    scope = f"clinic {args.tenant}" if args.tenant else "all clinics"
    print(f"Rebuilt the message rollups of {scope} in {time.perf_counter() - started:.1f} s ({rows:,} rollup rows).")
    return EXIT_OK


def cmd_create_tenant(args: argparse.Namespace) -> int:
    from app.services import tenants
    from db.session import system_session

    with system_session(_engine()) as session:
        clinic = tenants.create_tenant(
            session, name=args.name, slug=args.slug, timezone=args.timezone,
            default_language=args.language, default_region=args.region,
        )
    print(f"Created clinic '{clinic.name}' (slug {clinic.slug}, id {clinic.id}).")
    return EXIT_OK


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise AppError("No terminal to prompt for a password; pipe it in with --password-stdin.")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat the password: "):
        raise AppError("The two passwords differ.")
    return first


def cmd_db_roles(args: argparse.Namespace) -> int:
    import os

    from db.roles import create_roles, grant_privileges

    engine = _owner_engine()
    if engine.dialect.name != "postgresql":
        print("SQLite has no roles or row-level security; nothing to do.")
        return EXIT_OK
    with engine.begin() as connection:
        create_roles(connection, args.app_role, args.system_role, os.environ.get("CLINIC_APP_PASSWORD") or None)
        grant_privileges(connection, args.app_role, args.system_role)
    print(f"Roles ready: the app connects as '{args.app_role}' (row-level security applies); cross-clinic work "
          f"enters '{args.system_role}'. Point DATABASE_URL of the app, workers and callbacks at '{args.app_role}'.")
    return EXIT_OK


def cmd_create_user(args: argparse.Namespace) -> int:
    from app.services import staff, tenants
    from app.services.permissions import Actor
    from db.session import system_session, tenant_session

    engine = _engine()
    with system_session(engine) as session:
        clinic = tenants.get_by_slug(session, args.tenant)
    staff.parse_role(args.role)  # refuse a bad role before asking for a password
    password = _read_password(args)
    with tenant_session(engine, clinic.id) as session:
        member = staff.create_user(
            session, Actor.system(clinic.id, name="command line"), username=args.username, password=password,
            role=args.role, display_name=args.display_name or "", email=args.email,
        )
    print(f"Created {member.role.label.lower()} '{member.username}' in {clinic.name}.")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app", description="Clinic notifications: operator commands."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("migrate", help="apply database migrations (DATABASE_URL)")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("db-roles", help="PostgreSQL: create the app and system roles and grant them (run as owner)")
    p.add_argument("--app-role", default="clinic_app", help="the role the app, workers and callbacks log in as")
    p.add_argument("--system-role", default="clinic_system",
                   help="the BYPASSRLS role entered for cross-clinic work (DATABASE_SYSTEM_ROLE)")
    p.set_defaults(func=cmd_db_roles)

    p = sub.add_parser("seed-demo", help="create two demo clinics with staff, patients and history")
    p.add_argument("--messages", type=int, default=None, metavar="N",
                   help="total messages of history to generate (default: about 15,000 per clinic)")
    p.set_defaults(func=cmd_seed_demo)

    p = sub.add_parser("rebuild-rollups", help="recompute the dashboard rollups from the messages")
    p.add_argument("--tenant", default=None, metavar="SLUG", help="only this clinic (default: all)")
    p.set_defaults(func=cmd_rebuild_rollups)

    p = sub.add_parser("create-tenant", help="create a clinic")
    p.add_argument("--name", required=True, help="display name, e.g. 'Al Noor Clinic'")
    p.add_argument("--slug", required=True, help="short unique id, e.g. alnoor")
    p.add_argument("--timezone", default="Asia/Riyadh", help="IANA time zone (default Asia/Riyadh)")
    p.add_argument("--language", default="en", choices=["en", "ar"], help="default message language")
    p.add_argument("--region", default="SA", help="default phone region (ISO country code, default SA)")
    p.set_defaults(func=cmd_create_tenant)

    p = sub.add_parser("create-user", help="create a staff account in a clinic")
    p.add_argument("--tenant", required=True, metavar="SLUG", help="the clinic's slug")
    p.add_argument("--username", required=True)
    p.add_argument("--role", required=True, help="admin, front_desk or analyst")
    p.add_argument("--display-name", default="")
    p.add_argument("--email", default=None)
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input instead of prompting")
    p.set_defaults(func=cmd_create_user)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        print(f"error: cannot reach the database: {reason}", file=sys.stderr)
        return EXIT_ERROR
    except SQLAlchemyError as exc:
        print(f"error: database error: {type(exc).__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
