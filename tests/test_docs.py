"""Documentation that code depends on stays true.

- every setting in ``app/config.py`` is in docs/settings.md, and nothing else is;
- every ``python -m app`` command is in docs/operations.md;
- the README gives the two commands;
- every path, ``module.name`` and relative link named in the README and docs/ exists.

A failure lists every name that is missing, with the file that names it, so a rename shows in one
run what the docs still call by the old name.
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from pathlib import Path

import pytest

from app.cli import build_parser
from app.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SETTINGS_DOC = ROOT / "docs" / "settings.md"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
API_DOC = ROOT / "docs" / "api.md"
DOCUMENTS = (README, ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md")))

# Backticked paths are checked when they start at one of these (repo-relative) names.
CHECKED_ROOTS = {"app", "bench", "db", "docs", "pages", "tests", "worker", ".ci", ".streamlit"}
CHECKED_TOP_FILES = {"README.md", "Makefile", "requirements.txt", "requirements-dev.txt", "pyproject.toml",
                     "alembic.ini"}
# Paths the reader creates, not the repository: they are named as where to put something.
CREATED_BY_THE_READER = {".streamlit/secrets.toml"}
# Backticked dotted names of these packages are Python names: module, then attributes.
PACKAGES = {"app", "db", "worker"}
# Dotted spans that look like Python but are not (a PostgreSQL setting).
NOT_PYTHON = {"app.tenant_id"}

BACKTICKED = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
FENCE = re.compile(r"^```.*?^```", flags=re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
PATH = re.compile(r"[\w.\-]+(?:/[\w.\-]+)*/?")


def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def prose(path: Path) -> str:
    """The document without its fenced code blocks (commands and examples are not references)."""
    return FENCE.sub("", text_of(path))


def spans(path: Path) -> list[str]:
    return [span.strip() for span in BACKTICKED.findall(prose(path))]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# -- settings and commands -----------------------------------------------------------------


def test_every_setting_is_in_the_settings_table() -> None:
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", text_of(SETTINGS_DOC), flags=re.MULTILINE))
    expected = {name.upper() for name in Settings.model_fields}
    assert sorted(expected - documented) == [], f"settings missing from {rel(SETTINGS_DOC)}"
    assert sorted(documented - expected) == [], f"{rel(SETTINGS_DOC)} documents settings that do not exist"


def test_every_cli_command_is_in_the_operations_guide() -> None:
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    text = text_of(OPERATIONS_DOC)
    missing = [command for command in commands if f"python -m app {command}" not in text]
    assert missing == [], f"commands missing from {rel(OPERATIONS_DOC)}"


def test_readme_gives_the_two_commands() -> None:
    text = text_of(README)
    assert "make run" in text and "make test" in text


# -- every named thing exists ---------------------------------------------------------------


def named_paths(path: Path) -> set[str]:
    found = set()
    for span in spans(path):
        candidate = span.removeprefix("./")
        if not PATH.fullmatch(candidate) or ("/" not in candidate and candidate not in CHECKED_TOP_FILES):
            continue
        if candidate.split("/")[0] in CHECKED_ROOTS or candidate in CHECKED_TOP_FILES:
            found.add(candidate)
    return found - CREATED_BY_THE_READER


@pytest.mark.parametrize("doc", DOCUMENTS, ids=rel)
def test_every_named_path_exists(doc: Path) -> None:
    missing = sorted(p for p in named_paths(doc) if not (ROOT / p).exists())
    assert missing == [], f"{rel(doc)} names paths that do not exist: {missing}"


@cache
def resolve(dotted: str) -> bool:
    """Whether ``dotted`` is an importable module, or a module followed by attributes it has."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as err:
            if (err.name and ".".join(parts[:cut]).startswith(err.name)) or err.name is None:
                continue
            raise  # the module exists but imports something that does not: that is a code bug
        for attribute in parts[cut:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


def dotted_names(path: Path) -> set[str]:
    found = set()
    for span in spans(path):
        head = span.split("(")[0].strip()
        if DOTTED.fullmatch(head) and head.split(".")[0] in PACKAGES and head not in NOT_PYTHON:
            found.add(head)
    return found


def api_section_names() -> set[str]:
    """docs/api.md: each ``name(...)`` in a section headed by `module` (or `module.Class`), fully qualified.

    A section heading names one or more modules; a span ``f(...)`` is looked up in them, a span
    ``mod.f(...)`` in the heading's module whose last part is ``mod``.
    """
    found: set[str] = set()
    owners: list[str] = []
    for line in prose(API_DOC).splitlines():
        if line.startswith("#"):
            owners = [s for s in BACKTICKED.findall(line) if DOTTED.fullmatch(s) and s.split(".")[0] in PACKAGES]
            continue
        for span in BACKTICKED.findall(line):
            head = span.split("(")[0].strip()
            if "(" not in span or not owners or not re.fullmatch(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?", head):
                continue
            if "." in head:
                short, name = head.split(".")
                matching = [o for o in owners if o.rsplit(".", 1)[-1] == short]
                found.update(f"{o}.{name}" for o in matching)
            else:
                # a class's own name in its section is its constructor: look in its module too
                candidates = [f"{o}.{head}" for o in owners] + [f"{o.rsplit('.', 1)[0]}.{head}" for o in owners]
                found.add(next((c for c in candidates if resolve(c)), candidates[0]))
    return found


def test_every_named_python_name_exists() -> None:
    missing = []
    for doc in DOCUMENTS:
        names = dotted_names(doc) | (api_section_names() if doc == API_DOC else set())
        missing += [f"{rel(doc)}: {name}" for name in sorted(names) if not resolve(name)]
    assert missing == [], "the docs name Python objects that do not exist:\n  " + "\n  ".join(missing)


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", prose(path), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def broken_links(doc: Path) -> list[str]:
    broken = []
    for target in LINK.findall(prose(doc)):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(target)
    return broken


@pytest.mark.parametrize("doc", DOCUMENTS, ids=rel)
def test_every_relative_link_resolves(doc: Path) -> None:
    assert broken_links(doc) == [], f"{rel(doc)} links to files or headings that do not exist"
