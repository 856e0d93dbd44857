"""The PostgreSQL roles the system runs as (see docs/operations.md, "Database roles").

- the owner (migrations): owns the tables; a superuser or a role WITH BYPASSRLS;
- the app role (Streamlit app, workers, callback service): LOGIN, NOBYPASSRLS, not the owner, so
  row-level security holds it to the clinic of each transaction;
- the system role: NOLOGIN, BYPASSRLS; the app role is a member and enters it, for one
  transaction, only through ``db.session.system_session`` (cross-clinic work).

The app role's sessions also notice a client that vanished (a worker machine lost with its power
or its network, no FIN ever sent): without it, a transaction the lost worker left open keeps its
row locks for the kernel's default two hours, and every other worker's sweeper waits behind them.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, text

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Per-login settings of the app role: its server session ends (rolling back, freeing its locks)
# about a minute after its client stopped answering: keepalive probes after 30 s of silence, every
# 10 s, 3 unanswered; data left unacknowledged for 60 s (the peer vanished mid-answer).
DEAD_CLIENT_SETTINGS = {"tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10",
                        "tcp_keepalives_count": "3", "tcp_user_timeout": "60000"}


def _checked(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"not a plain role name: {name!r}")
    return name


def create_roles(connection: Connection, app_role: str, system_role: str, app_password: str | None = None) -> None:
    """Create both roles if missing (cluster-wide; needs CREATEROLE) and make the app role a member of
    the system role. Safe to run again."""
    app, system = _checked(app_role), _checked(system_role)
    for name, attributes in ((system, "NOLOGIN BYPASSRLS"), (app, "LOGIN NOBYPASSRLS")):
        connection.execute(text(
            f"DO $$ BEGIN CREATE ROLE {name} {attributes}; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"))
    connection.execute(text(f"ALTER ROLE {app} LOGIN NOBYPASSRLS NOSUPERUSER"))
    connection.execute(text(f"ALTER ROLE {system} NOLOGIN BYPASSRLS NOSUPERUSER"))
    if app_password:
        # typed parameters: format() takes "any", so PostgreSQL cannot infer them from the call
        statement = connection.scalar(
            text("SELECT format('ALTER ROLE %I PASSWORD %L', CAST(:role AS text), CAST(:password AS text))"),
            {"role": app, "password": app_password})
        connection.exec_driver_sql(statement)
    for setting, value in DEAD_CLIENT_SETTINGS.items():
        connection.execute(text(f"ALTER ROLE {app} SET {setting} = {value}"))
    connection.execute(text(f"GRANT {system} TO {app}"))


def grant_privileges(connection: Connection, app_role: str, system_role: str) -> None:
    """Give both roles the data privileges on this database's tables (run by the owner after migrating)."""
    roles = f"{_checked(app_role)}, {_checked(system_role)}"
    connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {roles}"))
    connection.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {roles}"))
    connection.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {roles}"))
    connection.execute(text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {roles}"))
