"""Stored text is shown as text: never as Markdown or HTML, and its bidi controls reorder nothing.

The helper (``app.ui.text``) is tested with hostile names; a source check then walks every page
and UI module and fails when a stored value (a name, reason, note, body ...) reaches a Markdown
call (``st.markdown``, ``st.caption``, ``st.error``, ``st.subheader``, an expander label ...)
without going through ``plain()``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from app.ui.rtl import rtl_markdown
from app.ui.text import FSI, PDI, as_text, plain, strip_bidi_controls

ROOT = Path(__file__).resolve().parents[2]
EMBEDDINGS_OVERRIDES_ISOLATES = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
HOSTILE_NAMES = [
    "[click](http://evil)", "![x](http://evil/x.png)", "**bold**", "<img src=x>", "_it_", "`code`",
    "# Heading", "> quote", "- item", "1. item", ":red[alert]", ":material/warning:", "$x^2$", "~~gone~~",
    "| a | b |", "&#x202E;reversed", "&lt;b&gt;", "http://evil.example/x", "www.evil.example", "Sara\n===",
    "<https://evil.example>", "[x]: http://evil.example", "\\*not bold\\*",
]


def _unescape(markdown: str) -> str:
    """What CommonMark shows for text whose every special character is backslash-escaped."""
    return re.sub(r"\\(.)", r"\1", markdown)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_plain_escapes_every_markdown_special_character(name: str) -> None:
    shown = plain(name)
    assert _unescape(shown) == name  # shows exactly as typed
    for special in "[]()!*_`<>#:$~|&=-.":
        # every special character is escaped (preceded by an odd number of backslashes)
        for match in re.finditer(re.escape(special), shown):
            run = len(shown[: match.start()]) - len(shown[: match.start()].rstrip("\\"))
            assert run % 2 == 1, (name, shown)


@pytest.mark.parametrize("control", list(EMBEDDINGS_OVERRIDES_ISOLATES))
def test_bidi_embeddings_overrides_and_isolates_never_leak(control: str) -> None:
    name = f"Ali{control}gnirts desrever"
    for shown in (plain(name), as_text(name), strip_bidi_controls(name), rtl_markdown(name)):
        inner = shown.removeprefix(FSI).removesuffix(PDI).removeprefix("\u2067")
        assert not set(inner) & set(EMBEDDINGS_OVERRIDES_ISOLATES), repr(shown)


def test_an_unpaired_pop_cannot_close_our_isolate_early() -> None:
    shown = as_text("\u2069\u202cسارة\u202e")
    assert shown == f"{FSI}سارة{PDI}"


def test_marks_are_kept_and_latin_text_is_unchanged() -> None:
    assert as_text("Sara\u200eAl-Qahtani") == "Sara\u200eAl-Qahtani"
    assert as_text("Sara\u200f\u061c") == f"{FSI}Sara\u200f\u061c{PDI}"  # RLM/ALM kept (inside an isolate)
    assert as_text("Dr. Omar (Dental)") == "Dr. Omar (Dental)"
    assert plain("Omar") == "Omar"


def test_right_to_left_values_are_isolated_so_they_reorder_nothing_around_them() -> None:
    assert as_text("سارة القحطاني") == f"{FSI}سارة القحطاني{PDI}"
    assert plain("سارة (VIP)") == f"{FSI}سارة \\(VIP\\){PDI}"
    assert as_text("שרה") == f"{FSI}שרה{PDI}"


# -- every page passes stored values through plain() ---------------------------------------------

MARKDOWN_CALLS = {"markdown", "write", "caption", "info", "success", "warning", "error", "toast", "subheader",
                  "header", "title", "expander", "radio", "tabs", "popover", "metric", "progress", "flash",
                  "open_next", "changed"}
STORED_FIELDS = {
    "name", "name_en", "name_ar", "display_name", "username", "tenant_name", "patient_name", "template_name",
    "template_code", "bulk_job_name", "reason", "status_reason", "note", "notes", "body", "subject", "title",
    "action", "changed_by", "created_by", "sent_by", "audience", "code", "recipient", "details_text",
    "approval_reason", "summary", "error", "err", "phone", "email", "mrn",
}
BARE_STORED = {"err", "reason", "note", "summary", "error"}  # local variables that hold stored text
SAFE_WRAPPERS = {"plain", "counted", "rtl_markdown"}
# Service errors (``str(err)``, composed by the application) keep their exact wording on screen; they
# go through ``as_text`` for bidi. Escaping them as Markdown is left for when their tests can change.
SAFE_WRAPPERS_FOR_ERRORS = {"as_text"}
# The provider error catalogue's own words (app code, not stored input); page tests read them verbatim.
CATALOGUE_TEXT = {"detail.error.code", "detail.error.title", "detail.error.action"}
SOURCES = sorted([*ROOT.glob("pages/*.py"), *ROOT.glob("app/ui/**/*.py"), ROOT / "app" / "streamlit_app.py"])


def _stored_values(node: ast.AST) -> list[str]:
    """Names of stored fields used in ``node`` outside a ``plain(...)`` call."""
    found: list[str] = []

    def walk(n: ast.AST) -> None:
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in SAFE_WRAPPERS:
            return
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in SAFE_WRAPPERS_FOR_ERRORS
                and n.args and isinstance(n.args[0], ast.Name) and n.args[0].id == "err"):
            return
        if isinstance(n, ast.IfExp):  # ``plain(x) if x else "-"``: the condition is not shown
            walk(n.body)
            walk(n.orelse)
            return
        if isinstance(n, ast.comprehension):  # loop targets are not shown; what is iterated is judged
            walk(n.iter)
            for condition in n.ifs:
                walk(condition)
            return
        if isinstance(n, ast.Call):  # a method call on a value (x.label(), len(x)) is judged by its arguments
            for arg in [*n.args, *(k.value for k in n.keywords)]:
                walk(arg)
            return
        if isinstance(n, ast.Attribute) and ast.unparse(n) in CATALOGUE_TEXT:
            return
        if isinstance(n, ast.Attribute) and n.attr in STORED_FIELDS:
            found.append(ast.unparse(n))
            return
        if isinstance(n, ast.Name) and n.id in BARE_STORED and isinstance(n.ctx, ast.Load):
            found.append(n.id)
            return
        for child in ast.iter_child_nodes(n):
            walk(child)

    walk(node)
    return found


def _unsafe_markdown_calls(path: Path) -> list[str]:
    return _problems(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))


def _problems(source: str, where: str) -> list[str]:
    problems = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name not in MARKDOWN_CALLS:
            continue
        texts = list(node.args[:2] if name in ("flash", "open_next", "changed") else node.args[:1])
        texts += [k.value for k in node.keywords if k.arg in ("body", "label", "text", "format_func")]
        for text in texts:
            for field in _stored_values(text):
                problems.append(f"{where}:{node.lineno}: {field} reaches st.{name} without plain()")
    return problems


def test_no_page_shows_a_stored_value_as_markdown() -> None:
    problems = [problem for path in SOURCES for problem in _unsafe_markdown_calls(path)]
    assert not problems, "\n".join(problems)


def test_the_source_check_catches_a_raw_name() -> None:
    source = ('st.markdown(f"**{patient.name_en}**")\nst.caption(p.reason)\n'
              'st.markdown(f"**{plain(patient.name_en)}**")\nst.expander(f"{job.name}")\nst.error(err)')
    assert _problems(source, "page") == [
        "page:1: patient.name_en reaches st.markdown without plain()",
        "page:2: p.reason reaches st.caption without plain()",
        "page:4: job.name reaches st.expander without plain()",
        "page:5: err reaches st.error without plain()",
    ]


def test_project_code_never_allows_html() -> None:
    for path in [*SOURCES, *ROOT.glob("app/**/*.py")]:
        assert "unsafe_allow_html" not in path.read_text(encoding="utf-8"), path
