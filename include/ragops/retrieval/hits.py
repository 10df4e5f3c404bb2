"""What the query path returns: hits that carry their citation, and the result of one query."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ragops.retrieval.fusion import FusionConfig


@dataclass(frozen=True)
class Citation:
    """Where a passage comes from, precisely enough to show it and to open it."""

    chunk_id: str
    doc_id: str
    source: str                   # the source's name ("pgdocs", "beir:scifact"...)
    location: str | None          # the document's path or URL (None when the lineage does not say)
    title: str                    # the document's title
    heading_path: str             # " > "-joined headings down to the passage
    char_start: int | None = None  # the passage's span in the document's text (Document.text)
    char_end: int | None = None
    position: int | None = None   # the chunk's index in its document

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    """One passage of a result, with its score at every stage it went through."""

    rank: int                     # 1-based, after the last stage
    chunk_id: str
    score: float                  # the last stage's score (dense cosine, BM25, fused, or the reranker's)
    text: str
    title: str                    # the passage's own title: its nearest heading
    citation: Citation
    scores: dict[str, float] = field(default_factory=dict)   # "dense", "keyword", "fused", "rerank"
    properties: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def id(self) -> str:
        """The store object id (the chunk id), as on a store's ``SearchHit``."""
        return self.chunk_id

    @property
    def similarity(self) -> float | None:
        """Cosine similarity of query and passage under the collection's model: the one score on a
        fixed scale across queries and modes (what "does not know" thresholds compare against)."""
        return self.scores.get("dense")

    def as_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "chunk_id": self.chunk_id, "score": self.score, "scores": dict(self.scores),
                "title": self.title, "text": self.text, "citation": self.citation.as_dict()}


@dataclass(frozen=True)
class Version:
    """The collection version a query ran on (all of its stages ran on this one)."""

    name: str                     # what was asked for: an alias or a collection
    collection: str               # the concrete collection version
    artifact_id: int | None = None
    version: int | None = None
    model_id: str | None = None
    model_hash: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchResult:
    query: str
    mode: str
    hits: list[Hit]
    version: Version
    fusion: FusionConfig | None   # the fusion used (hybrid mode only)
    reranker: str | None          # the reranker's name when the rerank stage ran
    candidates: int               # first-stage candidates the later stages saw
    timings: dict[str, float] = field(default_factory=dict)   # seconds per stage

    def as_dict(self) -> dict[str, Any]:
        return {"query": self.query, "mode": self.mode, "version": self.version.as_dict(),
                "fusion": self.fusion.as_dict() if self.fusion else None, "reranker": self.reranker,
                "candidates": self.candidates, "timings": dict(self.timings),
                "hits": [h.as_dict() for h in self.hits]}
