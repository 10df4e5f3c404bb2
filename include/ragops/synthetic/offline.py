"""The offline generator: pseudo-queries from the chunks themselves, no LLM needed.

Two kinds, deterministic for a given seed:

- ``heading``: the chunk's title or last heading, when it is informative (several words, not a
  generic section name such as "Introduction"). Its positive is the chunk's text WITHOUT the
  heading path: the embedding text starts with the heading, so keeping it would pair a query
  with a passage that literally contains it (and the copy filter would drop it).
- ``ict`` (Inverse Cloze Task, Lee et al. 2019): a sentence is taken out of the passage and
  becomes the query. Its positive is the passage WITHOUT that sentence: keeping it would make
  the pair a string-matching exercise (and the copy filter would rightly drop every such query).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from ragops.documents import embedding_text_of
from ragops.hashing import hash_object

GENERIC_HEADINGS = frozenset({
    "abstract", "introduction", "overview", "summary", "conclusion", "conclusions", "background",
    "methods", "results", "discussion", "references", "appendix", "examples", "example", "notes",
    "note", "description", "see also", "contents", "usage", "parameters", "returns", "todo",
})
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_WORD = re.compile(r"\w+")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def heading_query(chunk: dict[str, Any], min_words: int = 3) -> str | None:
    """The most specific heading of the chunk (or its title) when it can stand as a query."""
    path = [p.strip() for p in (chunk.get("heading_path") or "").split(" > ") if p.strip()]
    for candidate in ([path[-1]] if path else []) + [chunk.get("title") or ""]:
        words = _WORD.findall(candidate)
        if len(words) >= min_words and candidate.strip().lower() not in GENERIC_HEADINGS:
            return candidate.strip()
    return None


def _ict_candidates(sentences: Sequence[str], min_words: int, max_words: int) -> list[int]:
    return [i for i, s in enumerate(sentences) if min_words <= len(_WORD.findall(s)) <= max_words]


def offline_queries(chunks: Sequence[dict[str, Any]], *, questions_per_chunk: int = 2, seed: int = 0,
                    use_headings: bool = True, min_sentence_words: int = 6,
                    max_sentence_words: int = 40) -> list[dict[str, Any]]:
    """Query records (``query, positive, chunk_id, doc_id, content_hash, kind, question_index``).

    Per chunk: the heading query first (if informative), then ICT sentences, up to
    ``questions_per_chunk``. A passage keeps at least two sentences after removal, so the
    positive still has context. The sentence choice is a seeded shuffle per chunk, so adding
    chunks never changes the queries of the others.
    """
    records: list[dict[str, Any]] = []
    for chunk in chunks:
        produced: list[tuple[str, str, str]] = []  # (query, positive, kind)
        if use_headings and questions_per_chunk > 0:
            heading = heading_query(chunk)
            if heading is not None:
                produced.append((heading, chunk["text"], "heading"))
        sentences = split_sentences(chunk["text"])
        if len(sentences) >= 3:
            candidates = _ict_candidates(sentences, min_sentence_words, max_sentence_words)
            random.Random(hash_object([seed, chunk["content_hash"]])).shuffle(candidates)
            for index in candidates[: max(0, questions_per_chunk - len(produced))]:
                rest = " ".join(s for i, s in enumerate(sentences) if i != index)
                positive = embedding_text_of({**chunk, "text": rest})
                produced.append((sentences[index], positive, "ict"))
        for qi, (query, positive, kind) in enumerate(produced[:questions_per_chunk]):
            records.append({"query": query, "positive": positive, "chunk_id": chunk["chunk_id"],
                            "doc_id": chunk["doc_id"], "content_hash": chunk["content_hash"], "kind": kind,
                            "question_index": qi})
    return records
