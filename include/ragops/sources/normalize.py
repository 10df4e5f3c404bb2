"""Whitespace normalisation shared by the parsers: prose collapses, code keeps its lines."""

from __future__ import annotations

import textwrap


def normalize_inline(text: str) -> str:
    """Collapses every run of whitespace (newlines and NBSP included) to one space."""
    return " ".join(text.split())


def normalize_code(text: str) -> str:
    """Keeps the internal newlines and indentation of code; drops trailing spaces and blank edges."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return textwrap.dedent("\n".join(lines)).replace("\xa0", " ")
