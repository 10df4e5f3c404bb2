"""reStructuredText through docutils' doctree: sections give heading levels by nesting depth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragops.documents import Block
from ragops.sources.normalize import normalize_code, normalize_inline

# Quiet, safe parsing: no file inclusion or raw pass-through, and no reports on stderr.
_SETTINGS = {
    "report_level": 5, "halt_level": 5, "warning_stream": False, "file_insertion_enabled": False,
    "raw_enabled": False, "doctitle_xform": False, "syntax_highlight": "none", "input_encoding": "unicode",
}
_SKIP = ("system_message", "comment", "substitution_definition", "target", "raw", "pending")


def _register_sphinx_aliases() -> None:
    """Sphinx's code-block is the most common directive in real docs; plain docutils knows it as code."""
    from docutils.parsers.rst import directives
    from docutils.parsers.rst.directives.body import CodeBlock

    for name in ("code-block", "sourcecode"):
        directives.register_directive(name, CodeBlock)


def parse_rst(text: str, path: Path) -> tuple[str, list[Block]]:
    from docutils.core import publish_doctree

    _register_sphinx_aliases()
    tree = publish_doctree(text, source_path=str(path), settings_overrides=_SETTINGS)
    blocks: list[Block] = []
    _walk(tree, 0, blocks)
    blocks = [b for b in blocks if b.text]
    first_heading = next((b.text for b in blocks if b.kind == "heading"), "")
    return first_heading or path.stem, blocks


def _walk(node: Any, depth: int, blocks: list[Block]) -> None:
    from docutils import nodes

    for child in node.children:
        name = child.tagname
        if name in _SKIP:
            continue
        if isinstance(child, nodes.section):
            _walk(child, depth + 1, blocks)
        elif isinstance(child, nodes.title) and isinstance(node, nodes.section):
            blocks.append(Block("heading", normalize_inline(child.astext()), level=max(depth, 1)))
        elif isinstance(child, nodes.literal_block | nodes.doctest_block):
            blocks.append(Block("code", normalize_code(child.astext())))
        elif isinstance(child, nodes.bullet_list | nodes.enumerated_list):
            items = [f"- {normalize_inline(item.astext())}" for item in child.children
                     if isinstance(item, nodes.list_item)]
            blocks.append(Block("list", "\n".join(i for i in items if i != "- ")))
        elif isinstance(child, nodes.table):
            rows = [" | ".join(normalize_inline(entry.astext()) for entry in row.children)
                    for row in child.findall(nodes.row)]
            blocks.append(Block("table", "\n".join(r for r in rows if r.strip(" |"))))
        elif isinstance(child, nodes.paragraph | nodes.line_block | nodes.term | nodes.field_name
                        | nodes.rubric | nodes.caption | nodes.title):
            blocks.append(Block("paragraph", normalize_inline(child.astext())))
        elif isinstance(child, nodes.Text):
            text = normalize_inline(child.astext())
            if text:
                blocks.append(Block("paragraph", text))
        else:  # containers: admonitions, definition lists, block quotes, topics, ...
            _walk(child, depth, blocks)
