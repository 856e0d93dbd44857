"""What staff type into a search box or a filter, checked once and matched literally.

``clean_search`` refuses text no database should see (a NUL character, which PostgreSQL text
cannot hold; a lone surrogate, which is not text; anything longer than a search could mean) with
a plain ``ValidationError``, before any parser or query runs. ``contains`` is the one
case-insensitive "contains" match of every search: ``%``, ``_`` and ``\\`` in the text are
literal characters, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func

from app.errors import ValidationError

MAX_SEARCH_CHARS = 200
LIKE_ESCAPE = "\\"


def check_text(value: str, *, field: str, label: str, max_chars: int = MAX_SEARCH_CHARS) -> str:
    """``value`` unchanged, or a ``ValidationError`` that says what is wrong with it."""
    if "\x00" in value:
        raise ValidationError(f"{label} contains a NUL character (\\0), which is not text; remove it.",
                              field=field)
    if len(value) > max_chars:
        raise ValidationError(f"{label} is {len(value):,} characters long; at most {max_chars:,}.", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{label} contains characters that are not valid text.", field=field) from None
    return value


def clean_search(value: str | None, *, field: str = "search", label: str = "The search",
                 max_chars: int = MAX_SEARCH_CHARS) -> str:
    """The search text without surrounding spaces; refused as ``check_text`` says."""
    return check_text((value or "").strip(), field=field, label=label, max_chars=max_chars)


def like_literal(text: str) -> str:
    """``text`` for a LIKE pattern, every character literal (escaped with ``LIKE_ESCAPE``)."""
    return (text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%")
            .replace("_", LIKE_ESCAPE + "_"))


def contains(column: Any, text: str) -> ColumnElement[bool]:
    """``column`` contains ``text``, ignoring case (``lower`` on both sides), wildcards literal."""
    return func.lower(column).like(f"%{like_literal(text.lower())}%", escape=LIKE_ESCAPE)
