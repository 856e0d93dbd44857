"""The operator command line: each command works, and bad input is one clear line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(args: list[str], database_url: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "app", *args], input=stdin, capture_output=True, text=True,
        cwd=ROOT, env=env, timeout=120,
    )


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_migrate_create_tenant_and_user(db_url: str) -> None:
    assert run_cli(["migrate"], db_url).returncode == 0
    out = run_cli(["create-tenant", "--name", "North Clinic", "--slug", "north"], db_url)
    assert out.returncode == 0 and "north" in out.stdout
    out = run_cli(["create-user", "--tenant", "north", "--username", "nora", "--role", "front_desk",
                   "--password-stdin"], db_url, stdin="nora-password-1\n")
    assert out.returncode == 0, out.stderr
    from app.services.auth import LoginPolicy, authenticate
    from db.session import make_engine

    engine = make_engine(db_url)
    assert authenticate(engine, "nora", "nora-password-1", policy=LoginPolicy()).tenant_name == "North Clinic"
    engine.dispose()


@pytest.mark.parametrize(
    "args,stdin,message",
    [
        (["create-user", "--tenant", "nowhere", "--username", "x1x", "--role", "admin", "--password-stdin"],
         "long-password-1\n", "No clinic has the slug 'nowhere'"),
        (["create-user", "--tenant", "north", "--username", "x1x", "--role", "boss", "--password-stdin"],
         "long-password-1\n", "Unknown role 'boss'"),
        (["create-user", "--tenant", "north", "--username", "x1x", "--role", "admin", "--password-stdin"],
         "short\n", "at least 10 characters"),
        (["create-user", "--tenant", "north", "--username", "x1x", "--role", "admin"],
         "", "--password-stdin"),
        (["create-tenant", "--name", "Again", "--slug", "north"], "", "already exists"),
        (["create-tenant", "--name", "Bad", "--slug", "Bad Slug!"], "", "slug"),
    ],
)
def test_bad_input_is_one_clear_line(db_url: str, args, stdin, message) -> None:
    run_cli(["migrate"], db_url)
    run_cli(["create-tenant", "--name", "North", "--slug", "north"], db_url)
    out = run_cli(args, db_url, stdin)
    assert out.returncode == 1
    assert message in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "url,message",
    [
        ("nonsense", "DATABASE_URL"),
        ("mysql://root@localhost/x", "only PostgreSQL and SQLite"),
        ("postgresql://nobody@127.0.0.1:1/nothing", "cannot reach the database"),
    ],
)
def test_malformed_or_unreachable_database_url(url: str, message: str) -> None:
    out = run_cli(["migrate"], url)
    assert out.returncode == 1
    assert message in out.stderr and "Traceback" not in out.stderr


def test_help_for_each_command() -> None:
    for command in ("migrate", "seed-demo", "create-tenant", "create-user"):
        out = run_cli([command, "--help"], "sqlite://")
        assert out.returncode == 0 and "usage: python -m app" in out.stdout
