"""Citations: which document a passage came from, where that document lives, and the passage's span.

The store holds each chunk's ids, source name, titles and text; the rest is in the lineage: a
collection was embedded from a chunk set (``Relation.EMBEDDED_FROM``), which was chunked from a
corpus snapshot (``Relation.CHUNKED_FROM``) that holds every document's text, its path relative to
its source, and the source specs. ``CitationIndex.from_lineage`` reads both tables once per
collection version; spans are located lazily, a document at a time, and cached.

Spans are character offsets into the document's text (``Document.text``: its blocks joined by a
blank line), found by ``chunk_spans``: chunking rejoins blocks and sentences with its own
whitespace, so chunks are matched with whitespace runs collapsed and mapped back to the original
offsets. Spans are not stored in the chunk rows: those rows are the store objects' properties,
which every store keeps to a fixed schema.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from ragops.chunking import HEADING_SEPARATOR
from ragops.retrieval.hits import Citation
from ragops.vocabulary import Relation

if TYPE_CHECKING:
    from ragops.services import Services

log = logging.getLogger(__name__)

_ANCHOR = 48  # characters of a chunk's head and tail used when the whole chunk is not found verbatim


def _collapse(text: str) -> tuple[str, list[int]]:
    """``text`` with every whitespace run made one space, and each kept character's original offset."""
    out: list[str] = []
    offsets: list[int] = []
    in_space = True  # leading whitespace is dropped
    for i, ch in enumerate(text):
        if ch.isspace():
            if not in_space:
                out.append(" ")
                offsets.append(i)
            in_space = True
        else:
            out.append(ch)
            offsets.append(i)
            in_space = False
    if out and out[-1] == " ":
        out.pop()
        offsets.pop()
    return "".join(out), offsets


def chunk_spans(doc_text: str, chunk_texts: Sequence[str]) -> list[tuple[int, int] | None]:
    """The ``(start, end)`` character span of each chunk in ``doc_text`` (chunks in position order),
    or None for a chunk that cannot be located. ``doc_text[start:end]`` equals the chunk up to
    whitespace. Each search starts after the previous chunk's start, so repeated text is attributed
    in order; overlapping chunks (a shared tail) are fine."""
    norm, offsets = _collapse(doc_text)
    spans: list[tuple[int, int] | None] = []
    cursor = 0
    for text in chunk_texts:
        needle = " ".join(text.split())
        span = _find(norm, needle, cursor)
        if span is None and cursor:
            span = _find(norm, needle, 0)
        if span is None:
            spans.append(None)
            continue
        start, end = span
        spans.append((offsets[start], offsets[end - 1] + 1))
        cursor = start + 1
    return spans


def _find(norm: str, needle: str, cursor: int) -> tuple[int, int] | None:
    if not needle:
        return None
    at = norm.find(needle, cursor)
    if at >= 0:
        return at, at + len(needle)
    if len(needle) <= 2 * _ANCHOR:
        return None
    head, tail = needle[:_ANCHOR], needle[-_ANCHOR:]
    start = norm.find(head, cursor)
    if start < 0:
        return None
    end = norm.find(tail, start + len(head))
    if end < 0 or end - start > 2 * len(needle):
        return None
    return start, end + len(tail)


@dataclass(frozen=True)
class _Document:
    title: str
    text: str
    source: str
    location: str | None


def citation_from_properties(props: Mapping[str, Any], chunk_id: str | None = None) -> Citation:
    """A citation from the store object alone (no lineage: no location, no span)."""
    heading_path = str(props.get("heading_path") or "")
    # a heading path starts with the document's title (ragops.chunking); the chunk title is its nearest heading
    title = heading_path.split(HEADING_SEPARATOR)[0] if heading_path else str(props.get("title") or "")
    return Citation(chunk_id=str(chunk_id or props.get("chunk_id") or ""), doc_id=str(props.get("doc_id") or ""),
                    source=str(props.get("source") or ""), location=None, title=title,
                    heading_path=heading_path, position=_int(props.get("position")))


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def document_location(spec: Mapping[str, Any] | None, metadata: Mapping[str, Any], doc_id: str) -> str | None:
    """A document's path or URL: the source spec's ``base_url`` (or ``url``) joined with the
    document's path when the spec has one, else the source folder joined with it. BEIR documents
    are addressed inside their corpus file (``corpus.jsonl#<_id>``)."""
    rel = str(metadata.get("path") or "")
    if not spec or not rel:
        return rel or None
    base_url = spec.get("base_url") or spec.get("url")
    if metadata.get("format") == "beir":
        anchor = doc_id.split(":", 1)[1] if ":" in doc_id and doc_id.startswith(str(spec.get("name") or "")) else doc_id
        rel = f"{rel}#{anchor}"
    if base_url:
        return f"{str(base_url).rstrip('/')}/{rel.lstrip('/')}"
    return str(PurePosixPath(str(spec.get("path") or "")) / rel)


class CitationIndex:
    """Citations of one collection version: documents by id, chunks by document, spans on demand."""

    def __init__(self, documents: Mapping[str, _Document], chunks: Mapping[str, list[tuple[int, str, str]]]):
        self._documents = dict(documents)
        self._chunks = {doc: sorted(rows) for doc, rows in chunks.items()}   # doc -> [(position, chunk_id, text)]
        self._spans: dict[str, tuple[int, int] | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_lineage(cls, svc: Services, collection_artifact_id: int) -> CitationIndex | None:
        """Reads the collection's chunk set and corpus snapshot; None when the lineage lacks them."""
        registry, artifacts = svc.registry, svc.artifacts
        chunk_set = registry.parent(collection_artifact_id, Relation.EMBEDDED_FROM)
        corpus = registry.parent(chunk_set.id, Relation.CHUNKED_FROM) if chunk_set else None
        if chunk_set is None or corpus is None:
            log.warning("collection artifact %s records no chunk set or corpus: citations without spans",
                        collection_artifact_id)
            return None
        specs = {str(s.get("name") or ""): s for s in corpus.params.get("sources") or [] if isinstance(s, dict)}
        documents: dict[str, _Document] = {}
        table = artifacts.read_table(artifacts.rel_of(corpus.uri))
        for row in table.select(["doc_id", "source", "title", "text", "metadata"]).to_pylist():
            metadata = json.loads(row.get("metadata") or "{}")
            documents[row["doc_id"]] = _Document(
                row["title"] or "", row["text"] or "", row["source"] or "",
                document_location(specs.get(row["source"] or ""), metadata, row["doc_id"]))
        chunks: dict[str, list[tuple[int, str, str]]] = {}
        table = artifacts.read_table(artifacts.rel_of(chunk_set.uri))
        for row in table.select(["chunk_id", "doc_id", "position", "text"]).to_pylist():
            chunks.setdefault(row["doc_id"], []).append((int(row["position"]), row["chunk_id"], row["text"]))
        return cls(documents, chunks)

    def span(self, doc_id: str, chunk_id: str) -> tuple[int, int] | None:
        with self._lock:
            if chunk_id not in self._spans:
                rows = self._chunks.get(doc_id) or []
                doc = self._documents.get(doc_id)
                spans = chunk_spans(doc.text, [t for _, _, t in rows]) if doc else [None] * len(rows)
                self._spans.update({cid: span for (_, cid, _), span in zip(rows, spans, strict=True)})
                self._spans.setdefault(chunk_id, None)
            return self._spans[chunk_id]

    def cite(self, props: Mapping[str, Any], chunk_id: str) -> Citation:
        base = citation_from_properties(props, chunk_id)
        doc = self._documents.get(base.doc_id)
        if doc is None:
            return base
        span = self.span(base.doc_id, base.chunk_id)
        return Citation(chunk_id=base.chunk_id, doc_id=base.doc_id, source=doc.source or base.source,
                        location=doc.location, title=doc.title or base.title, heading_path=base.heading_path,
                        char_start=span[0] if span else None, char_end=span[1] if span else None,
                        position=base.position)

    def document_text(self, doc_id: str) -> str | None:
        doc = self._documents.get(doc_id)
        return doc.text if doc else None
