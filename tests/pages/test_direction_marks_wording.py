"""The counters name their direction marks in good English (issue 19, Arabic: "show it in the
counter"): the template's counter and the send-one preview say "1 direction mark that keeps a number
in order", not "1 direction mark that keep numbers in order"."""

from __future__ import annotations

from tests.pages.conftest import Clinic, texts
from tests.pages.test_templates_page import make_template, open_template, templates_page


def test_the_template_counter_says_one_mark_keeps_a_number_in_order(clinic: Clinic) -> None:
    template = make_template(clinic)
    at = open_template(templates_page(clinic), template)
    captions = texts(at.caption)
    assert any("including 1 direction mark that keeps a number in order" in c for c in captions), captions
    assert not any("mark that keep " in c for c in captions)
