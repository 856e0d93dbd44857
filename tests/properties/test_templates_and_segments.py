"""Properties of template rendering and SMS segment counting, over generated input."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import ValidationError
from app.segments import GSM7_BASIC, GSM7_EXTENSION, GSM7_MULTI, GSM7_SINGLE, UCS2_MULTI, UCS2_SINGLE, count_segments
from app.templating import render_template

# Pieces staff (or an attacker) might type into a template: Jinja syntax, operators, big numbers,
# attribute tricks, filters, loops, Arabic, braces of the old placeholder style.
FRAGMENTS = [
    "{{", "}}", "{%", "%}", "{#", "#}", "{", "}", " ", "\n", "patient_name", "clinic_name", "x", "loop",
    "1", "0", "-1", "99999999", "1e308", "2", "*", "**", "+", "-", "%", "/", "//", "~", "(", ")", "[", "]",
    ".", ",", ":", "'a'", '"%s"', "'{:>99}'", "|upper", "|center(", "|join", "|first", "|replace('a','b')",
    "|format(", "|int", "|default('x')", "if", "else", "elif", "endif", "for", "in", "endfor", "range",
    "set", "=", "==", "not", "and", "or", "__class__", "__mro__", "__subclasses__()", "__globals__",
    "self", "lipsum", "cycler", "namespace", "format", "ljust", "mro", "items()", "keys", "None", "true",
    "مرحبا", "€", "😀", "\\", "'", '"',
]
template_sources = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join),
    st.text(max_size=200),
)
VALUES = {"patient_name": "Sara", "clinic_name": "Al Noor", "x": 3}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(template_sources)
def test_rendering_anything_gives_text_or_our_validation_error(source: str) -> None:
    try:
        rendered = render_template(source, VALUES)
    except ValidationError as exc:
        assert str(exc).strip(), "a refusal always says why"
    else:
        assert isinstance(rendered, str) and len(rendered) <= 20_000


plain_text = st.text(alphabet=st.characters(blacklist_characters="{}%#", blacklist_categories=("Cs",)),
                     max_size=300)


@given(plain_text)
def test_text_without_template_syntax_comes_out_as_written(text: str) -> None:
    """Verbatim, except that line endings are normalised to \\n (Jinja's newline handling)."""
    written = text.replace("\r\n", "\n").replace("\r", "\n")
    assert render_template(text, {}) == written.strip()


@given(st.text(max_size=200))
def test_values_are_inserted_verbatim_never_evaluated_or_escaped(value: str) -> None:
    """A patient name like ``{{ 7*7 }}`` or ``<b>`` is shown as typed (SMS is plain text)."""
    assert render_template("Dear {{ patient_name }}!", {"patient_name": value}) == f"Dear {value}!".strip()


@given(st.just("Dear {patient_name}, see you at {clinic_name}."))
def test_old_single_brace_placeholders_mean_the_same(source: str) -> None:
    assert render_template(source, VALUES) == render_template(
        "Dear {{ patient_name }}, see you at {{ clinic_name }}.", VALUES)


# -- SMS segments ---------------------------------------------------------------------------------

GSM_BASIC = sorted(GSM7_BASIC)
GSM_EXT = sorted(GSM7_EXTENSION)
gsm_basic_text = st.text(alphabet=st.sampled_from(GSM_BASIC), max_size=800)
gsm_text = st.text(alphabet=st.sampled_from(GSM_BASIC + GSM_EXT), max_size=800)
arabic_text = st.text(alphabet=st.characters(min_codepoint=0x0621, max_codepoint=0x064A), min_size=1, max_size=800)


def _expected_parts(units: int, single: int, multi: int) -> int:
    return 0 if units == 0 else 1 if units <= single else math.ceil(units / multi)


@given(gsm_basic_text)
def test_gsm7_basic_text_is_160_then_153_per_part(text: str) -> None:
    info = count_segments(text)
    assert (info.encoding, info.units) == ("GSM-7", len(text))
    assert info.segments == _expected_parts(len(text), GSM7_SINGLE, GSM7_MULTI)


@given(gsm_text)
def test_extension_characters_count_twice(text: str) -> None:
    info = count_segments(text)
    extension = sum(c in GSM7_EXTENSION for c in text)
    assert (info.encoding, info.units) == ("GSM-7", len(text) + extension)
    if info.units <= GSM7_SINGLE:
        assert info.segments == (1 if text else 0)
    else:  # an escape pair is never split, so a part may carry one septet less
        assert math.ceil(info.units / GSM7_MULTI) <= info.segments <= math.ceil(info.units / (GSM7_MULTI - 1))


@given(arabic_text)
def test_arabic_is_ucs2_70_then_67_per_part(text: str) -> None:
    info = count_segments(text)
    assert (info.encoding, info.units) == ("UCS-2", len(text))
    assert info.segments == _expected_parts(len(text), UCS2_SINGLE, UCS2_MULTI)


@given(gsm_basic_text, st.sampled_from(["ع", "’", "😀", "“"]))
def test_one_stray_character_switches_everything_to_ucs2(text: str, stray: str) -> None:
    info = count_segments(text + stray)
    assert info.encoding == "UCS-2" and stray in info.non_gsm_chars
    assert info.units == len(text) + (2 if ord(stray) > 0xFFFF else 1)


@given(st.text(max_size=400), st.characters(blacklist_categories=("Cs",)))
def test_adding_a_character_never_needs_fewer_parts(text: str, extra: str) -> None:
    assert count_segments(text + extra).segments >= count_segments(text).segments


def test_the_exact_boundaries() -> None:
    cases = [("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3),
             ("€" * 80, 1), ("€" * 81, 2), ("a" * 159 + "€", 2),
             ("ع" * 70, 1), ("ع" * 71, 2), ("ع" * 134, 2), ("ع" * 135, 3)]
    assert [(len(text), count_segments(text).segments) for text, _ in cases] == [
        (len(text), parts) for text, parts in cases]
