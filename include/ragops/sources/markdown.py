"""Markdown (CommonMark + tables) through markdown-it-py's token stream."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ragops.documents import Block
from ragops.sources.normalize import normalize_code, normalize_inline

_FRONT_MATTER = re.compile(r"\A---\s*\n.*?\n(---|\.\.\.)\s*\n", re.S)


def _parser() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table")


def _inline_text(token: Any) -> str:
    """The visible text of an inline token: link targets and markup dropped, image alt text kept."""
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline", "html_inline"):
            parts.append(child.content if child.type != "html_inline" else "")
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content or "")
    return normalize_inline("".join(parts))


def parse_markdown(text: str, path: Path) -> tuple[str, list[Block]]:
    tokens = _parser().parse(_FRONT_MATTER.sub("", text))
    blocks: list[Block] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            blocks.append(Block("heading", _inline_text(tokens[i + 1]), level=int(tok.tag[1])))
            i += 3
            continue
        if tok.type in ("fence", "code_block"):
            code = normalize_code(tok.content)
            if code:
                blocks.append(Block("code", code))
        elif tok.type in ("bullet_list_open", "ordered_list_open"):
            i = _read_list(tokens, i, blocks)
            continue
        elif tok.type == "table_open":
            i = _read_table(tokens, i, blocks)
            continue
        elif tok.type == "inline":  # paragraphs, including those inside blockquotes
            para = _inline_text(tok)
            if para:
                blocks.append(Block("paragraph", para))
        i += 1
    blocks = [b for b in blocks if b.text]
    headings = [b for b in blocks if b.kind == "heading"]
    top = min(headings, key=lambda b: b.level) if headings else None
    title = next((b.text for b in headings if b.level == 1), top.text if top else path.stem)
    return title, blocks


def _read_list(tokens: list[Any], start: int, blocks: list[Block]) -> int:
    """One list block ("- item" lines, nested items indented); code inside items stays in the list."""
    depth = 0
    items: list[str] = []
    i = start
    while i < len(tokens):
        tok = tokens[i]
        if tok.type in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
            if depth == 0:
                break
        elif tok.type == "inline":
            text = _inline_text(tok)
            if text:
                items.append(f"{'  ' * (depth - 1)}- {text}")
        elif tok.type in ("fence", "code_block"):
            items.append(normalize_code(tok.content))
        i += 1
    if items:
        blocks.append(Block("list", "\n".join(items)))
    return i + 1


def _read_table(tokens: list[Any], start: int, blocks: list[Block]) -> int:
    rows: list[list[str]] = []
    i = start
    while i < len(tokens) and tokens[i].type != "table_close":
        tok = tokens[i]
        if tok.type == "tr_open":
            rows.append([])
        elif tok.type == "inline" and rows:
            rows[-1].append(_inline_text(tok))
        i += 1
    text = "\n".join(" | ".join(r) for r in rows if any(r))
    if text:
        blocks.append(Block("table", text))
    return i + 1
