"""A template's Arabic source on screen (review 19b, point 1): each placeholder is a left-to-right
isolate inside the right-to-left line, so ``{{ patient_name }}`` keeps its braces the right way round,
and its spaces are no-break spaces, so it is never broken across lines; display only
(``app.ui.rtl.source_markdown``)."""

from __future__ import annotations

from app.ui import rtl

LRI, RLI, PDI, NBSP = "\u2066", "\u2067", "\u2069", "\u00a0"


def test_each_placeholder_is_a_left_to_right_isolate_inside_the_right_to_left_line() -> None:
    shown = rtl.source_markdown("مرحبا {{ patient_name }}، موعدك {appointment_date}.")

    assert shown == (f"{RLI}مرحبا {LRI}\\{{\\{{{NBSP}patient\\_name{NBSP}\\}}\\}}{PDI}، موعدك "
                     f"{LRI}\\{{appointment\\_date\\}}{PDI}\\.{PDI}")


def test_statements_and_comments_are_isolated_too_and_lines_are_kept() -> None:
    shown = rtl.source_markdown("{% if doctor_name %}مع {{ doctor_name }}{% endif %}\n\n{# note #}شكرا")

    first, empty, last = shown.split("  \n")
    assert first == (f"{RLI}{LRI}\\{{%{NBSP}if{NBSP}doctor\\_name{NBSP}%\\}}{PDI}"
                     f"مع {LRI}\\{{\\{{{NBSP}doctor\\_name{NBSP}\\}}\\}}{PDI}"
                     f"{LRI}\\{{%{NBSP}endif{NBSP}%\\}}{PDI}{PDI}")
    assert empty == ""
    assert last == f"{RLI}{LRI}\\{{\\#{NBSP}note{NBSP}\\#\\}}{PDI}شكرا{PDI}"


def test_stored_direction_controls_cannot_escape_the_isolates() -> None:
    hostile = "مرحبا {{ patient_name \u2069\u202e}} \u2066موعدك"
    shown = rtl.source_markdown(hostile)

    assert shown == f"{RLI}مرحبا {LRI}\\{{\\{{{NBSP}patient\\_name{NBSP}\\}}\\}}{PDI} موعدك{PDI}"
    assert shown.count(LRI) == 1 and shown.count(PDI) == 2


def test_text_without_placeholders_shows_as_rtl_markdown_does() -> None:
    text = "شكرا لكم\n**لا** <b>x</b>"
    assert rtl.source_markdown(text) == rtl.rtl_markdown(text)
