"""Showing stored text safely in Streamlit's Markdown."""

from __future__ import annotations

import re

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(value: object) -> str:
    """``value`` as literal text inside Markdown: a name like ``*Dr_Ali*`` shows as typed."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(value))


def counted(number: int, noun: str) -> str:
    """``1 row``, ``2 rows``, ``1,000 recipients`` (English nouns that take an ``s``)."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
