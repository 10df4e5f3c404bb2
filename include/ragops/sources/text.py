"""Plain text: paragraphs split on blank lines; the title is the first line when it looks like one."""

from __future__ import annotations

import re
from pathlib import Path

from ragops.documents import Block
from ragops.sources.normalize import normalize_inline

_BLANK_LINES = re.compile(r"\n\s*\n")
MAX_TITLE_CHARS = 120


def parse_text(text: str, path: Path) -> tuple[str, list[Block]]:
    paragraphs = [normalize_inline(p) for p in _BLANK_LINES.split(text)]
    blocks = [Block("paragraph", p) for p in paragraphs if p]
    first_line = text.strip().splitlines()[0].strip() if text.strip() else ""
    title = first_line if 0 < len(first_line) <= MAX_TITLE_CHARS else path.stem
    if blocks and blocks[0].text == title and len(blocks) > 1:
        blocks[0] = Block("heading", title, level=1)  # a title line on its own is the document's heading
    return title, blocks
