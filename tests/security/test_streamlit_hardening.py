"""Streamlit's own settings are safe, and raw HTML reaches the browser only from fixed markup.

- ``.streamlit/config.toml``: XSRF protection on, no usage statistics, uncaught errors shown as a
  generic message (``client.showErrorDetails = "none"``; the old ``false`` now means "stacktrace"
  and would show the traceback).
- ``unsafe_allow_html=True`` and ``st.html`` appear only at the call sites listed below, and those
  pass module constants (static markup), never stored or typed text.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest
from streamlit import config as streamlit_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
SOURCE_FOLDERS = ("app", "pages", "worker", "db")

# (file, function it is called in) -> why it is safe. Empty for unsafe_allow_html on purpose.
UNSAFE_ALLOW_HTML_SITES: dict[tuple[str, str], str] = {}
ST_HTML_SITES: dict[tuple[str, str], str] = {
    ("app/ui/rtl.py", "style_arabic_inputs"): "a fixed stylesheet (_RTL_STYLE) that lays Arabic inputs out RTL",
}


@pytest.mark.parametrize(("section", "option", "value"), [
    ("server", "enableXsrfProtection", True),
    ("browser", "gatherUsageStats", False),
    ("client", "showErrorDetails", "none"),
])
def test_the_config_file_sets(section: str, option: str, value: object) -> None:
    assert CONFIG[section][option] == value


def test_streamlit_understands_error_details_none_as_hiding_them() -> None:
    option = streamlit_config._config_options_template["client.showErrorDetails"]  # type: ignore[attr-defined]
    assert "none" in option.description.lower() and "generic" in option.description.lower()


def _python_files() -> list[Path]:
    return [p for folder in SOURCE_FOLDERS for p in (ROOT / folder).rglob("*.py")]


def _call_sites(predicate) -> dict[tuple[str, str], list[ast.Call]]:  # type: ignore[no-untyped-def]
    """Calls matching ``predicate``, keyed by (file, innermost enclosing function or "<module>")."""
    sites: dict[tuple[str, str], list[ast.Call]] = {}
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        owner: dict[int, str] = {}
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for function in functions:  # ast.walk is breadth-first: inner functions overwrite outer ones
            for node in ast.walk(function):
                owner[id(node)] = function.name
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and predicate(node):
                key = (str(path.relative_to(ROOT)), owner.get(id(node), "<module>"))
                sites.setdefault(key, []).append(node)
    return sites


def _allows_html(call: ast.Call) -> bool:
    return any(k.arg == "unsafe_allow_html" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
               for k in call.keywords)


def _is_st_html(call: ast.Call) -> bool:
    return isinstance(call.func, ast.Attribute) and call.func.attr == "html" \
        and isinstance(call.func.value, ast.Name) and call.func.value.id == "st"


def test_unsafe_allow_html_only_at_allowed_sites() -> None:
    assert set(_call_sites(_allows_html)) <= set(UNSAFE_ALLOW_HTML_SITES)


def test_the_text_unsafe_allow_html_true_appears_nowhere_else() -> None:
    """A plain grep as well, so ``**{"unsafe_allow_html": True}`` tricks are caught too."""
    offenders = [str(p.relative_to(ROOT)) for p in _python_files()
                 if "unsafe_allow_html" in p.read_text(encoding="utf-8")
                 and str(p.relative_to(ROOT)) not in {f for f, _ in UNSAFE_ALLOW_HTML_SITES}]
    assert offenders == []


def test_st_html_only_at_allowed_sites_and_only_with_constants() -> None:
    sites = _call_sites(_is_st_html)
    assert set(sites) == set(ST_HTML_SITES), "a new or moved st.html call: pass it only fixed markup, list it here"
    for (file, _function), calls in sites.items():
        module = ast.parse((ROOT / file).read_text(encoding="utf-8"))
        constants = {target.id for n in module.body if isinstance(n, ast.Assign) for target in n.targets
                     if isinstance(target, ast.Name) and isinstance(n.value, ast.Constant)
                     and isinstance(n.value.value, str)}
        for call in calls:
            argument = call.args[0]
            fixed = isinstance(argument, ast.Constant) or (isinstance(argument, ast.Name) and argument.id in constants)
            assert fixed, f"{file}: st.html must be given a module-level string constant"
