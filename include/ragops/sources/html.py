"""HTML through BeautifulSoup + lxml: boilerplate removed, structure kept as blocks.

lxml repairs malformed markup the way browsers do, so a broken page still loads when it has
text; a page with none is rejected by the caller.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ragops.documents import Block
from ragops.sources.errors import FileRejected
from ragops.sources.normalize import normalize_code, normalize_inline

# Elements that never hold document content.
DROP_TAGS = ("script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form",
             "iframe", "svg", "canvas", "button", "select", "input", "object", "embed", "head")
# class/id/role values of navigation and boilerplate containers, matched per token.
# navheader/navfooter/toc/index are the DocBook (PostgreSQL manual) page chrome.
BOILERPLATE_TOKEN = re.compile(
    r"^(nav|navbar|navheader|navfooter|navigation|menu|toc|index|breadcrumbs?|sidebar|site-?header|"
    r"site-?footer|page-?footer|skip-?link|cookie.*|consent.*|share|social.*|advert.*|ads?|banner|"
    r"related-?links|edit-?this-?page)$",
    re.I,
)
BOILERPLATE_ROLES = {"navigation", "banner", "contentinfo", "search", "complementary"}
HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Tags whose children are walked as separate blocks; anything else is inline text.
BLOCK_TAGS = {"html", "body", "main", "article", "section", "div", "p", "blockquote", "dl", "dt", "dd",
              "figure", "figcaption", "details", "summary", "address", "center", "fieldset", "li",
              "caption", "hgroup"}
STRUCTURE_TAGS = [*HEADINGS, "pre", "table", "ul", "ol", *sorted(BLOCK_TAGS - {"html", "body"})]
# _walk recurses once per element level; deeper elements are flattened to their text first, so a
# page nested thousands deep loads instead of hitting Python's recursion limit.
MAX_DEPTH = 200


def parse_html(text: str, path: Path) -> tuple[str, list[Block]]:
    import warnings

    from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning

    with warnings.catch_warnings():
        # XHTML pages (the PostgreSQL manual) are parsed as HTML on purpose: lxml's HTML parser repairs.
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(text, "lxml")
    title_tag = soup.find("title")
    page_title = normalize_inline(title_tag.get_text()) if title_tag else ""
    had_text = bool((soup.body or soup).get_text().strip())
    _drop_boilerplate(soup)
    root = soup.body or soup
    _flatten_deep(root, MAX_DEPTH)
    blocks: list[Block] = []
    _walk(root, blocks)
    blocks = [b for b in blocks if b.text]
    if had_text and not blocks:
        raise FileRejected("navigation_only", f"{path.name}: all its text is navigation or boilerplate")
    first_h1 = next((b.text for b in blocks if b.kind == "heading" and b.level == 1), "")
    first_heading = next((b.text for b in blocks if b.kind == "heading"), "")
    return page_title or first_h1 or first_heading or path.stem, blocks


def _drop_boilerplate(soup: Any) -> None:
    from bs4 import Comment

    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    for tag in soup.find_all(DROP_TAGS):
        tag.decompose()
    doomed = []
    for tag in soup.find_all(True):
        attrs = tag.attrs or {}
        tokens = list(attrs.get("class") or []) + str(attrs.get("id") or "").split()
        if attrs.get("role") in BOILERPLATE_ROLES or any(BOILERPLATE_TOKEN.match(t) for t in tokens):
            doomed.append(tag)
    for tag in doomed:
        if not tag.decomposed:
            tag.decompose()


def _flatten_deep(root: Any, max_depth: int) -> None:
    """Replaces each element nested deeper than ``max_depth`` by its text (iteratively: no recursion
    here). Its own structure is lost, which only pathological pages have."""
    from bs4 import NavigableString, Tag

    too_deep = []
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        for child in node.children:
            if isinstance(child, Tag):
                if depth + 1 > max_depth:
                    too_deep.append(child)  # and not below it: the whole subtree becomes text
                else:
                    stack.append((child, depth + 1))
    for tag in too_deep:
        tag.replace_with(NavigableString(" " + tag.get_text(" ") + " "))


def _walk(node: Any, blocks: list[Block], inline: list[str] | None = None) -> None:
    """Emits blocks for ``node``'s children; loose text gathers in ``inline`` until a block boundary.

    An inline element that (in repaired, malformed markup) wraps block elements is walked through
    with the same buffer, so its text still joins the surrounding sentence.
    """
    from bs4 import NavigableString, Tag

    top = inline is None
    buffer: list[str] = [] if inline is None else inline

    def flush() -> None:
        text = normalize_inline("".join(buffer))
        buffer.clear()
        if text:
            blocks.append(Block("paragraph", text))

    for child in node.children:
        if isinstance(child, NavigableString):
            buffer.append(str(child))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name
        if name in HEADINGS:
            flush()
            blocks.append(Block("heading", normalize_inline(child.get_text(" ")), level=HEADINGS[name]))
        elif name == "pre":
            flush()
            blocks.append(Block("code", normalize_code(child.get_text())))
        elif name == "table":
            flush()
            blocks.append(Block("table", _table_text(child)))
        elif name in ("ul", "ol"):
            flush()
            items = [normalize_inline(li.get_text(" ")) for li in child.find_all("li", recursive=False)]
            if not items:  # malformed lists: text directly inside ul/ol
                items = [normalize_inline(child.get_text(" "))]
            blocks.append(Block("list", "\n".join(f"- {i}" for i in items if i)))
        elif name == "br":
            buffer.append("\n")
        elif name in BLOCK_TAGS:
            flush()
            _walk(child, blocks, buffer)
            flush()
        elif child.find(STRUCTURE_TAGS):
            _walk(child, blocks, buffer)
        else:
            buffer.append(child.get_text())
    if top:
        flush()


def _table_text(table: Any) -> str:
    rows = []
    for tr in table.find_all("tr"):
        cells = [normalize_inline(c.get_text(" ")) for c in tr.find_all(("td", "th"))]
        if any(cells):
            rows.append(" | ".join(cells))
    if not rows:
        return normalize_inline(table.get_text(" "))
    return "\n".join(rows)
