"""Rendering staff-authored message templates safely (Jinja2 sandbox, strict variables, budgets).

Templates are written by clinic staff, so they are untrusted code. Rendering happens in an
``ImmutableSandboxedEnvironment`` with:
- ``StrictUndefined``: a missing variable is an error that names it;
- a short list of filters and of text methods (``.upper()``, ``.replace()`` ...); anything else
  is refused with a message that names it;
- every filter, method and operator that can make text bigger works out the size of its result
  BEFORE making it (``replace`` counts the occurrences, ``center``/``ljust`` look at the width,
  ``format``/``%`` read the widths in the format string, ``join`` adds up the parts, ``*`` and
  ``**`` multiply sizes), and refuses a result over ``MAX_OUTPUT_CHARS`` characters;
- nothing can be folded while compiling (folding ``'x'|center(10**9)`` while *parsing* would
  exhaust memory before any render check runs): filters take the render context, the size-
  changing operators are intercepted, and ``~`` and ``{% for %}`` are rewritten to call guards;
- a render budget: every text or list a render makes is charged to ``MAX_WORK_BYTES``, loops
  may repeat ``MAX_LOOP_ITERATIONS`` times in all, and the render stops after
  ``MAX_RENDER_SECONDS`` (checked on every loop step, call, filter and operator).
Together these keep any render (and any compile on save) under 50 MB and 0.5 s.
The single-brace placeholders of the previous system (``{patient_name}``) are accepted and
mean exactly ``{{ patient_name }}``.
"""

from __future__ import annotations

import functools
import math
import re
import string
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes, pass_context
from jinja2 import filters as jinja_filters
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg
from jinja2.visitor import NodeTransformer

from app.bidi import keep_ltr_order
from app.errors import ValidationError

MAX_OUTPUT_CHARS = 20_000  # longest text (or list) one value, one step or the whole message may be
MAX_RENDER_SECONDS = 0.25  # half the 0.5 s promise, so that even the refusal lands inside it
MAX_NUMBER = 100_000  # largest repetition count, width or exponent operand a template may use
MAX_INT_BITS = 14_000  # about 4,200 digits: Python will not print a longer whole number anyway
MAX_WORK_BYTES = 8_000_000  # all the text and lists one render may make, added up (estimated bytes)
MAX_LOOP_ITERATIONS = 100_000  # loop steps of one render, all loops together
MAX_SOURCE_CHARS = 20_000
MAX_TEMPLATE_NODES = 2_000  # parts of a parsed template (a variable, a filter, a loop ...): compile time
MAX_TEMPLATE_DEPTH = 60  # how deeply those parts may nest (brackets inside brackets ...)

_SINGLE_BRACE = re.compile(r"(?<!\{)\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}(?!\})")
# Jinja's own constructs in a template's source: an expression {{ ... }}, a statement {% ... %}, a comment
# {# ... #}, and a single-brace placeholder {name}. The braces checker sets them aside; a screen showing
# Arabic source lays each out left to right (app.ui.rtl.source_markdown).
TEMPLATE_CONSTRUCT = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}|" + _SINGLE_BRACE.pattern, re.DOTALL)
_DIGITS = re.compile(r"\d+")

_TOO_LONG = "the result would be too long"
_TOO_LARGE = "a number in this template is too large"
_WIDTH_TOO_LARGE = "a format width in this template is too large"


class TemplateRenderError(ValidationError):
    """A template could not be compiled or rendered; the message says why in plain words."""


def convert_single_braces(source: str) -> str:
    """Rewrite ``{name}`` placeholders as ``{{ name }}``; Jinja syntax is left untouched."""
    return _SINGLE_BRACE.sub(lambda m: "{{ " + m.group(1) + " }}", source)


# -- the budget of one render ---------------------------------------------------------------------


class _Budget:
    """What one render may still spend; lives in a context variable while the render runs."""

    __slots__ = ("deadline", "steps", "work")

    def __init__(self) -> None:
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS
        self.work = 0
        self.steps = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateRenderError("The template takes too long to render.")

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_LOOP_ITERATIONS:
            raise TemplateRenderError(
                f"The template's loops repeat more than {MAX_LOOP_ITERATIONS:,} times in all."
            )
        if not self.steps & 63:
            self.tick()

    def charge(self, nbytes: int) -> None:
        self.work += nbytes
        if self.work > MAX_WORK_BYTES:
            raise TemplateRenderError("The template builds too much text while rendering; make it simpler.")


_BUDGET: ContextVar[_Budget | None] = ContextVar("template_render_budget", default=None)


def _tick() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.tick()


def _charge(value: Any) -> Any:
    """Refuse ``value`` if it is too long; count what it costs against the render's budget."""
    if isinstance(value, str):
        if len(value) > MAX_OUTPUT_CHARS:
            raise SecurityError(_TOO_LONG)
        cost = 80 + 4 * len(value)
    elif isinstance(value, list | tuple | dict | set | frozenset):
        if len(value) > MAX_OUTPUT_CHARS:
            raise SecurityError(_TOO_LONG)
        cost = 64 + 8 * len(value)
        for item in value:  # new items (``|list`` of a text, ``split``) are paid for too
            if isinstance(item, str):
                cost += 80 + 4 * len(item)
    elif isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_INT_BITS:
            raise SecurityError(_TOO_LARGE)
        return value
    else:
        return value
    budget = _BUDGET.get()
    if budget is not None:
        budget.tick()
        budget.charge(cost)
    return value


def _refuse_if_longer(size: int) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise SecurityError(_TOO_LONG)


# -- sizes worked out before anything is made ------------------------------------------------------


def _text_size(value: Any, limit: int = MAX_OUTPUT_CHARS) -> int:
    """At least ``len(str(value))`` (more is fine), counting stops soon after ``limit``."""
    if isinstance(value, str):
        return len(value)
    if value is None or isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 2
    if isinstance(value, float | complex):
        return 64
    if isinstance(value, Collection) and not isinstance(value, bytes | bytearray | range):
        return _repr_size(value, limit)
    return len(str(value))  # the application's own values (dates) and Jinja's objects: short


def _repr_size(value: Any, limit: int, depth: int = 0) -> int:
    """At least ``len(repr(value))`` for texts, numbers and containers of them."""
    if isinstance(value, str):
        return (2 * len(value) if value.isprintable() else 10 * len(value)) + 2
    if depth > 50:
        return limit + 1
    if isinstance(value, Mapping):
        items: Iterable[Any] = (part for pair in value.items() for part in pair)
    elif isinstance(value, Collection) and not isinstance(value, bytes | bytearray | range):
        items = value
    else:
        return _text_size(value, limit) + 2
    total = 16
    for item in items:
        total += _repr_size(item, limit - total, depth + 1) + 2
        if total > limit:
            break
    return total


def _argument_size(values: Iterable[Any], *, as_repr: bool = False) -> int:
    biggest = 0
    for value in values:
        size = _repr_size(value, MAX_OUTPUT_CHARS) if as_repr else _text_size(value)
        biggest = max(biggest, size)
        if biggest > MAX_OUTPUT_CHARS:
            break
    return biggest


def _check_width(digits: str) -> int:
    """A width or precision written in a format string, refused when it is too large."""
    if len(digits) > 6 or int(digits or 0) > MAX_OUTPUT_CHARS:
        raise SecurityError(_WIDTH_TOO_LARGE)
    return int(digits or 0)


def _digits_at(fmt: str, i: int) -> tuple[str, int]:
    if fmt.startswith("*", i):
        raise SecurityError("a format width must be written as a number")
    j = i
    while j < len(fmt) and fmt[j] in "0123456789":
        j += 1
    return fmt[i:j], j


def _percent_specs(fmt: str) -> Iterator[tuple[str, str, str]]:
    """``(width, precision, conversion)`` of each ``%`` spec, read in one pass (no regex backtracking)."""
    i, end = 0, len(fmt)
    while (i := fmt.find("%", i)) >= 0:
        i += 1
        if fmt.startswith("(", i):  # %(key)s: the key may hold brackets of its own
            depth, i = 1, i + 1
            while i < end and depth:
                depth += {"(": 1, ")": -1}.get(fmt[i], 0)
                i += 1
        while i < end and fmt[i] in "#0- +":
            i += 1
        width, i = _digits_at(fmt, i)
        precision = ""
        if fmt.startswith(".", i):
            precision, i = _digits_at(fmt, i + 1)
        while i < end and fmt[i] in "hlL":
            i += 1
        yield width, precision, fmt[i:i + 1]
        i += 1


def _percent_format_size(fmt: str, operands: Any) -> int:
    """At least the length of ``fmt % operands``."""
    if isinstance(operands, Mapping):
        values: Collection[Any] = list(operands.values())
    elif isinstance(operands, tuple | list):
        values = operands
    else:
        values = (operands,)
    plain = _argument_size(values)
    shown = _argument_size(values, as_repr=True)
    size = len(fmt)
    for width, precision, kind in _percent_specs(fmt):
        size += _check_width(width) + _check_width(precision) + 32
        size += shown if kind in ("r", "a") else plain
        if size > MAX_OUTPUT_CHARS:
            break
    return size


def _str_format_size(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """At least the length of ``fmt.format(*args, **kwargs)``."""
    values = [*args, *kwargs.values()]
    plain = _argument_size(values)
    shown = _argument_size(values, as_repr=True)
    size = len(fmt)
    for _literal, field, spec, conversion in string.Formatter().parse(fmt):
        if field is None:
            continue
        if spec and "{" in spec:
            raise SecurityError("a format width must be written as a number")
        size += sum(_check_width(d) for d in _DIGITS.findall(spec or "")) + 32
        size += 2 * (shown if conversion in ("r", "a") else plain)  # 2x: thousands separators
        if size > MAX_OUTPUT_CHARS:
            break
    return size


def _replace_size(text: str, old: Any, new: Any, count: Any = -1) -> int:
    old, new = str(old), str(new)
    found = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + max(0, found * (len(new) - len(old)))


def _items(value: Any) -> list[Any]:
    """``value``'s items as a list (every iterable a template can reach is already bounded)."""
    items = value if isinstance(value, list) else list(value)
    _refuse_if_longer(len(items))
    return items


def _join_size(items: list[Any], separator: Any) -> int:
    size = len(str(separator)) * max(len(items) - 1, 0)
    for item in items:
        size += _text_size(item)
        if size > MAX_OUTPUT_CHARS:
            break
    return size


# -- filters and text methods ------------------------------------------------------------------

# How much longer than its input a filter's text result can be (``'ß'|upper`` is ``SS``,
# ``'"'|e`` is ``&#34;``); filters not listed here make no text.
_TEXT_GROWTH = {
    "capitalize": 3, "lower": 3, "upper": 3, "title": 3, "escape": 5, "e": 5,
    "trim": 1, "string": 1, "striptags": 1, "wordcount": 1, "truncate": 1,
}


def _filter_result_size(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """At least the length of the text filter ``name`` would make (0 when it makes no text)."""
    if name in _TEXT_GROWTH:
        extra = sum(len(a) for a in (*args, *kwargs.values()) if isinstance(a, str))  # truncate's end
        return _TEXT_GROWTH[name] * _text_size(value) + extra
    if name == "center":
        width = (args or (kwargs.get("width", 80),))[0]
        return max(_text_size(value), width if isinstance(width, int) else 0)
    if name == "replace":
        _refuse_if_longer(_text_size(value))
        return _replace_size(str(value), *args, **kwargs)
    if name == "format":
        _refuse_if_longer(_text_size(value))
        return _percent_format_size(str(value), kwargs or args)
    return 0


def _wrap_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Run filter ``name`` at render time only (never folded while compiling), within the budget."""

    pass_arg = _PassArg.from_obj(func)

    @pass_context
    def wrapper(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        for arg in (*args, *kwargs.values()):
            if _is_big(arg):
                raise SecurityError(_TOO_LARGE)
        if name == "join":
            attribute = kwargs.get("attribute", args[1] if len(args) > 1 else None)
            if attribute is not None:
                value = map(jinja_filters.make_attrgetter(context.environment, attribute), value)
                kwargs.pop("attribute", None)
                args = args[:1]
            value = _items(value)
            _refuse_if_longer(_join_size(value, (args or (kwargs.get("d", ""),))[0]))
        else:
            _refuse_if_longer(_filter_result_size(name, value, args, kwargs))
        if pass_arg is _PassArg.eval_context:
            result = func(context.eval_ctx, value, *args, **kwargs)
        elif pass_arg is _PassArg.environment:
            result = func(context.environment, value, *args, **kwargs)
        elif pass_arg is _PassArg.context:
            result = func(context, value, *args, **kwargs)
        else:
            result = func(value, *args, **kwargs)
        return _charge(result)

    return wrapper


_ALLOWED_FILTERS = (
    "capitalize", "center", "default", "d", "first", "float", "format", "int", "join", "last",
    "length", "count", "lower", "replace", "round", "string", "title", "trim", "truncate", "upper",
    "wordcount", "abs", "list", "max", "min", "sort", "unique", "striptags", "escape", "e",
)

# Methods a template may call on text, and how much longer than the text the result can be
# (``None``: worked out from the arguments before the call). Anything else (``expandtabs``,
# ``encode``, ``translate``, ``format_map`` ...) is refused.
_STR_METHODS: dict[str, int | None] = {
    **dict.fromkeys(("capitalize", "casefold", "lower", "upper", "title", "swapcase"), 3),
    **dict.fromkeys(("strip", "lstrip", "rstrip", "removeprefix", "removesuffix"), 1),
    **dict.fromkeys(("split", "rsplit", "splitlines"), 1),
    **dict.fromkeys(("startswith", "endswith", "count", "find", "rfind", "index", "rindex",
                     "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "islower",
                     "isnumeric", "isspace", "istitle", "isupper"), 0),
    **dict.fromkeys(("replace", "center", "ljust", "rjust", "zfill", "join", "format"), None),
}
_SAFE_ATTRIBUTES: dict[type, frozenset[str]] = {
    str: frozenset(_STR_METHODS),
    dict: frozenset({"get", "items", "keys", "values"}),
    list: frozenset({"count", "index"}),
    tuple: frozenset({"count", "index"}),
    range: frozenset({"start", "stop", "step"}),
    **dict.fromkeys((int, float, bool, complex, bytes, bytearray, set, frozenset), frozenset()),
}


def _safe_attributes(obj: Any) -> frozenset[str] | None:
    for kind, names in _SAFE_ATTRIBUTES.items():
        if isinstance(obj, kind):
            return names
    return None  # Jinja's own objects (``loop``) and the application's values: the sandbox's rules


def _str_method_result_size(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    growth = _STR_METHODS.get(name, 0)
    if growth is not None:
        return growth * len(text)
    if name == "replace":
        return _replace_size(text, *args, **kwargs)
    if name in ("center", "ljust", "rjust", "zfill"):
        width = (args or (kwargs.get("width", 0),))[0]
        return max(len(text), width if isinstance(width, int) else 0)
    if name == "join":
        return _join_size(args[0], text) if args and isinstance(args[0], list) else 0
    return 0


def _is_big(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) > MAX_NUMBER
    return isinstance(value, float) and (not math.isfinite(value) or abs(value) > MAX_NUMBER)


def _bounded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > 1000:
        raise SecurityError("range() in a template is limited to 1000 items")
    return result


def _guard_loop(iterable: Any) -> Iterator[Any]:
    """What every ``{% for %}`` iterates: counts the steps and watches the clock."""
    budget = _BUDGET.get()
    if budget is None:
        yield from iterable
        return
    for item in iterable:
        budget.step()
        yield item


def _join_text(parts: list[Any]) -> str:
    """``a ~ b ~ c``: the parts' sizes are added up before they are joined."""
    size = 0
    for part in parts:
        size += _text_size(part)
        _refuse_if_longer(size)
    return _charge("".join([str(part) for part in parts]))


def _concat(parts: Iterable[str]) -> str:
    """What Jinja joins captured output with (``{% set %}`` blocks, macros, ``{% filter %}``)."""
    parts = parts if isinstance(parts, list) else list(parts)
    _refuse_if_longer(sum(map(len, parts)))
    return _charge("".join(parts))


@pass_context
def _finalize(context: Any, value: Any) -> str:
    """Every ``{{ ... }}`` is turned into text here; its size is known before it is made."""
    if not isinstance(value, str):
        _refuse_if_longer(_text_size(value))
        value = str(value)
    return _charge(value)


def _check_shape(tree: nodes.Template) -> None:
    """Refuse a template too big or too deeply nested to compile quickly (counted without recursion)."""
    count = 0
    pending: list[tuple[nodes.Node, int]] = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        count += 1
        if count > MAX_TEMPLATE_NODES:
            raise _TooComplex(f"The template has too many parts (more than {MAX_TEMPLATE_NODES:,} "
                              "variables, filters, values and tags); make it shorter or simpler.")
        if depth > MAX_TEMPLATE_DEPTH:
            raise _TooComplex("The template is nested too deeply to be read; make it simpler.")
        pending.extend((child, depth + 1) for child in node.iter_child_nodes())


class _TooComplex(TemplateError):
    """A template refused before compiling; the message is already plain."""


class _Guards(NodeTransformer):
    """Rewrites a parsed template so that ``~`` and ``{% for %}`` run through the guards above."""

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802 (Jinja's visitor naming)
        self.generic_visit(node)
        return self._call("join_text", nodes.List(node.nodes, lineno=node.lineno), node.lineno)

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802
        if node.recursive:
            raise TemplateSyntaxError("recursive loops are not allowed in templates", node.lineno)
        self.generic_visit(node)
        node.iter = self._call("guard_loop", node.iter, node.lineno)
        return node

    @staticmethod
    def _call(name: str, argument: nodes.Expr, lineno: int) -> nodes.Call:
        return nodes.Call(nodes.EnvironmentAttribute(name, lineno=lineno), [argument], [], None, None,
                          lineno=lineno)


class MessageTemplateEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox for staff templates. Use ``render_template`` rather than this directly."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False,
                         finalize=_finalize)
        self.filters = {name: _wrap_filter(name, jinja_filters.FILTERS[name]) for name in _ALLOWED_FILTERS}
        self.tests = dict(self.tests)
        self.globals = {"range": _bounded_range}
        self.concat = _concat  # type: ignore[assignment]
        self.guard_loop = _guard_loop
        self.join_text = _join_text

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        _check_shape(tree)
        return _Guards().visit(tree)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "**":
            if _is_big(right) or _is_big(left):
                raise SecurityError(_TOO_LARGE)
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
                if right * abs(left).bit_length() > MAX_INT_BITS:
                    raise SecurityError(_TOO_LARGE)
        elif operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int):
                    _refuse_if_longer(len(seq) * max(count, 0))
            if _is_big(left) and _is_big(right):
                raise SecurityError(_TOO_LARGE)
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise SecurityError(_TOO_LARGE)
        elif operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                _refuse_if_longer(len(left) + len(right))
        elif operator == "%" and isinstance(left, str):
            operands = right if isinstance(right, tuple | list) else (right,)
            if any(_is_big(v) for v in operands):
                raise SecurityError(_WIDTH_TOO_LARGE)
            _refuse_if_longer(_percent_format_size(left, right))
        return _charge(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _tick()
        for arg in (*args, *kwargs.values()):
            if _is_big(arg):
                raise SecurityError(_TOO_LARGE)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and callable(__obj) and not isinstance(owner, type):
            name = getattr(__obj, "__name__", "")
            if name == "join" and args:
                args = (_items(args[0]), *args[1:])
            _refuse_if_longer(_str_method_result_size(owner, name, args, kwargs))
        return _charge(super().call(__context, __obj, *args, **kwargs))

    def getitem(self, obj: Any, argument: Any) -> Any:
        result = super().getitem(obj, argument)
        return _charge(result) if isinstance(argument, slice) else result

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        allowed = _safe_attributes(obj)
        if allowed is not None:
            return attr in allowed
        return super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        kind = "text" if isinstance(obj, str) else f"a {type(obj).__name__} value"
        hint = f"'{attribute}' cannot be used on {kind} in a template"
        if isinstance(obj, str):
            hint += f"; text methods allowed: {', '.join(sorted(_STR_METHODS))}"
        return self.undefined(hint, name=attribute, obj=obj, exc=SecurityError)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text = value.__self__
        if value.__name__ == "format_map":
            return self.unsafe_undefined(text, "format_map")  # type: ignore[no-any-return]

        @functools.wraps(wrapped)
        def checked(*args: Any, **kwargs: Any) -> str:
            _refuse_if_longer(_str_format_size(text, args, kwargs))
            return wrapped(*args, **kwargs)

        return checked


_ENV = MessageTemplateEnvironment()


def _explain(exc: Exception) -> str:
    if isinstance(exc, _TooComplex):
        return str(exc)
    if isinstance(exc, UndefinedError):
        match = re.search(r"'([^']+)' is undefined", str(exc))
        name = match.group(1) if match else str(exc)
        return f"Unknown variable '{name}': no value was given for it."
    if isinstance(exc, SecurityError):
        return f"This template uses something that is not allowed ({exc})."
    if isinstance(exc, TemplateSyntaxError):
        text = exc.message or "syntax error"
        if "No filter named" in text:
            return f"{text.rstrip('.')}. Allowed filters: {', '.join(sorted(set(_ALLOWED_FILTERS)))}."
        if "recursive loops" in text:
            return f"This template uses something that is not allowed ({text})."
        return f"The template has a syntax error on line {exc.lineno}: {text}. Check that every {{{{ has a }}}}."
    if isinstance(exc, RecursionError | SyntaxError):
        return "The template is nested too deeply to be read; make it simpler."
    if isinstance(exc, MemoryError):
        return "The template needs too much memory; make it simpler."
    if isinstance(exc, ValueError) and "integer string conversion" in str(exc):
        return f"This template uses something that is not allowed ({_TOO_LARGE})."
    if isinstance(exc, KeyError):
        return f"The template could not be rendered: no value named {exc} in a format."
    return f"The template could not be rendered: {exc}"


@dataclass(frozen=True)
class CompiledTemplate:
    source: str
    variables: frozenset[str]
    _template: Any

    def render(self, values: Mapping[str, Any]) -> str:
        return _render_compiled(self, values)


@functools.lru_cache(maxsize=256)
def compile_template(source: str) -> CompiledTemplate:
    """Parse and compile ``source``; raise TemplateRenderError with a plain explanation.

    Cached by source: compiling costs about 1.4 ms, rendering a few microseconds, and a bulk send
    renders the same one or two texts for every recipient. A compiled template holds no values, so
    sharing it between renders (and threads) is safe; a source that fails is not cached.
    """
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateRenderError(f"The template is longer than {MAX_SOURCE_CHARS:,} characters.")
    converted = convert_single_braces(source)
    token = _BUDGET.set(_Budget())  # anything Jinja folds while compiling is bounded too
    try:
        ast = _ENV.parse(converted)  # parsed once: compiling costs more than rendering
        variables = frozenset(meta.find_undeclared_variables(ast)) - set(_ENV.globals)
        template = _ENV.template_class.from_code(_ENV, _ENV.compile(ast), _ENV.make_globals(None), None)
    except TemplateRenderError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes a plain message (int literals, nesting)
        raise TemplateRenderError(_explain(exc)) from None
    finally:
        _BUDGET.reset(token)
    return CompiledTemplate(source=source, variables=variables, _template=template)


def template_variables(source: str) -> frozenset[str]:
    """The variable names a template uses (e.g. ``{'patient_name', 'appointment_date'}``)."""
    return compile_template(source).variables


def _render_compiled(compiled: CompiledTemplate, values: Mapping[str, Any]) -> str:
    budget = _Budget()
    token = _BUDGET.set(budget)
    parts: list[str] = []
    size = 0
    try:
        for chunk in compiled._template.generate(dict(values)):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateRenderError(
                    f"The rendered message is longer than {MAX_OUTPUT_CHARS:,} characters."
                )
            budget.tick()
            parts.append(chunk)
    except TemplateRenderError:
        raise
    except Exception as exc:  # noqa: BLE001 - staff text can raise anything Python can; say it plainly
        raise TemplateRenderError(_explain(exc)) from None
    finally:
        _BUDGET.reset(token)
    return keep_ltr_order("".join(parts).strip())


def render_template(source: str, values: Mapping[str, Any]) -> str:
    """Render staff-authored ``source`` with ``values``; raise TemplateRenderError on any problem.

    Numbers inside Arabic text keep their order (``app.bidi.keep_ltr_order``: a direction mark
    before each), in previews and in sent bodies alike.
    """
    return compile_template(source).render(values)
