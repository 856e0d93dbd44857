"""Imports flow one way (docs/architecture.md, "Layers"): a test fails when one runs against them.

    pages ─> app.ui ─> app.services (+ app.analytics) ─> app.delivery ─> app.providers ─> core ─> db
    worker ─────────────┘
Entry points (pages, worker, the command line, the demo seeder, the Streamlit entry) sit on top;
nothing imports them. A module may import its own layer or any layer below, with two limits: a page
talks to the UI glue and the services only (of the database it may name only the vocabulary,
``db.enums``), and only pages and the UI glue import Streamlit.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY, UI, SERVICES, DELIVERY, PROVIDERS, CORE, DB = 6, 5, 4, 3, 2, 1, 0
LAYER_NAMES = {ENTRY: "entry", UI: "ui", SERVICES: "services", DELIVERY: "delivery", PROVIDERS: "providers",
               CORE: "core", DB: "db"}
APP_PACKAGES = {"ui": UI, "streamlit_app": ENTRY, "services": SERVICES, "analytics": SERVICES, "delivery": DELIVERY,
                "providers": PROVIDERS, "demo": ENTRY, "cli": ENTRY, "__main__": ENTRY}
PAGES_MAY_IMPORT = {UI, SERVICES, CORE}
PAGES_MAY_NAME_FROM_DB = {"db.enums"}
STREAMLIT_ALLOWED = ("pages.", "app.ui.", "app.streamlit_app")


def layer(module: str) -> int | None:
    """The layer of a project module (None for third-party and standard-library modules)."""
    parts = module.split(".")
    if parts[0] in ("pages", "worker"):
        return ENTRY
    if parts[0] == "db":
        return DB
    if parts[0] != "app":
        return None
    return APP_PACKAGES.get(parts[1], CORE) if len(parts) > 1 else CORE


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the file, wherever it stands (functions too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names
                      if layer(f"{node.module}.{alias.name}") is not None and node.module in ("app", "db")]
    return found


def project_files() -> list[Path]:
    return [path for base in ("app", "pages", "worker", "db") for path in sorted((ROOT / base).rglob("*.py"))
            if "migrations" not in path.parts]


def violations(files: list[Path]) -> list[str]:
    found = []
    for path in files:
        me = module_name(path)
        mine = layer(me)
        assert mine is not None
        for line, target in imports(path):
            where = f"{path.relative_to(ROOT)}:{line} imports {target}"
            if target.split(".")[0] == "streamlit" and not me.startswith(STREAMLIT_ALLOWED):
                found.append(f"{where}: only pages and app.ui may import Streamlit")
            theirs = layer(target)
            if theirs is None or (target.split(".")[0] == me.split(".")[0] == "app" and theirs == mine):
                continue
            if theirs == ENTRY and target.split(".")[0] != me.split(".")[0]:
                found.append(f"{where}: nothing imports an entry point")
            elif me.startswith("pages."):
                if theirs not in PAGES_MAY_IMPORT and not target.startswith(tuple(PAGES_MAY_NAME_FROM_DB)):
                    found.append(f"{where}: a page uses app.ui and app.services only ({LAYER_NAMES[theirs]})")
            elif me.startswith("worker") and theirs == UI:
                found.append(f"{where}: the worker uses services and delivery, never the UI glue")
            elif theirs > mine:
                found.append(f"{where}: {LAYER_NAMES[mine]} may not import {LAYER_NAMES[theirs]}")
    return found


def test_imports_flow_one_way() -> None:
    found = violations(project_files())
    assert found == [], "imports against the layers (docs/architecture.md, 'Layers'):\n" + "\n".join(found)


def test_the_check_catches_each_kind_of_wrong_import(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The rule itself: each forbidden edge is reported (a check that passes everything proves nothing)."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    cases = {
        "app/providers/bad.py": "from app.delivery import sender",
        "app/delivery/bad.py": "from app.services import audit",
        "app/services/bad.py": "import streamlit as st",
        "pages/bad.py": "from db.session import tenant_session",
        "db/bad.py": "from app.config import get_settings",
        "app/segments_bad.py": "def f():\n    from app.services import messaging",
        "worker/bad.py": "from app.ui import session",
    }
    for name, source in cases.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source + "\n", encoding="utf-8")
    found = violations(sorted(tmp_path.rglob("*.py")))
    assert {line.split(":")[0] for line in found} == set(cases), found
    (tmp_path / "pages/good.py").write_text("from db.enums import Role\nfrom app.services import audit\n")
    assert violations([tmp_path / "pages/good.py"]) == []
