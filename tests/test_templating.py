"""Compiled templates are cached by source: shared safely, and a broken source is never cached."""

from __future__ import annotations

import pytest

from app.templating import TemplateRenderError, compile_template, render_template


def test_one_source_is_compiled_once_and_renders_each_recipients_own_values() -> None:
    source = "Hi {{ patient_name }}, room {{ room }} / مرحبا {{ patient_name }}"
    assert compile_template(source) is compile_template(source)
    assert render_template(source, {"patient_name": "Sara", "room": "3"}) == "Hi Sara, room 3 / مرحبا Sara"
    assert render_template(source, {"patient_name": "Omar", "room": "5"}) == "Hi Omar, room 5 / مرحبا Omar"
    with pytest.raises(TemplateRenderError, match="room"):  # nothing left over from the last render
        render_template(source, {"patient_name": "Omar"})


def test_a_broken_source_fails_every_time() -> None:
    for _ in range(2):
        with pytest.raises(TemplateRenderError, match="syntax error"):
            compile_template("Hi {{ patient_name")
