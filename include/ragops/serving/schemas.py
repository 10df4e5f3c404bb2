"""Request and response bodies of the service (they make its OpenAPI schema)."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from ragops.serving.settings import MAX_K, MAX_QUERY_CHARS, MAX_RERANK_TOP_N, MAX_SOURCES
from ragops.stores.base import COLLECTION_NAME
from ragops.vocabulary import SearchMode


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value.strip()


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: int = Field(10, ge=1, le=MAX_K, description="How many passages to return.")
    mode: SearchMode = Field(SearchMode.HYBRID, description="First stage: dense, keyword or hybrid.")
    rerank: bool = Field(False, description="Rerank the first stage's top rerank_top_n.")
    rerank_top_n: int = Field(20, ge=1, le=MAX_RERANK_TOP_N, description="Candidates the reranker sees (>= k).")
    collection: str | None = Field(None, pattern=COLLECTION_NAME.pattern, max_length=121,
                                   description="An alias (or a collection version); default: the service's.")
    sources: list[str] | None = Field(None, max_length=MAX_SOURCES,
                                      description="Only passages of these sources (by source name).")


class SearchRequest(_Request):
    query: str = Field(..., min_length=1, max_length=MAX_QUERY_CHARS)

    _query = field_validator("query")(_not_blank)


class AnswerRequest(_Request):
    question: str = Field(..., min_length=1, max_length=MAX_QUERY_CHARS,
                          validation_alias=AliasChoices("question", "query"))
    k: int = Field(5, ge=1, le=MAX_K, description="How many passages go to the LLM, numbered [1]..[k].")

    _question = field_validator("question")(_not_blank)


class CitationOut(BaseModel):
    chunk_id: str
    doc_id: str
    source: str
    location: str | None = Field(None, description="The document's path or URL.")
    title: str = Field(description="The document's title.")
    heading_path: str
    char_start: int | None = Field(None, description="The passage's span in the document's text.")
    char_end: int | None = None
    position: int | None = None


class HitOut(BaseModel):
    rank: int
    chunk_id: str
    score: float = Field(description="The last stage's score.")
    scores: dict[str, float] = Field(description="Score per stage: dense (cosine), keyword (BM25), fused, rerank.")
    title: str = Field(description="The passage's nearest heading.")
    text: str
    citation: CitationOut


class VersionOut(BaseModel):
    name: str
    collection: str
    artifact_id: int | None = None
    version: int | None = None
    model_id: str | None = None
    model_hash: str | None = None


class SearchResponse(BaseModel):
    query: str
    mode: str
    version: VersionOut = Field(description="The collection version every stage of this query ran on.")
    fusion: dict | None = None
    reranker: str | None = None
    candidates: int
    timings: dict[str, float] = Field(description="Seconds per stage.")
    hits: list[HitOut]


class AnswerCitationOut(CitationOut):
    n: int = Field(description="The [n] the answer cites.")
    score: float
    similarity: float | None = None


class PassageOut(HitOut):
    n: int


class AnswerResponse(BaseModel):
    question: str
    answer: str
    kind: str = Field(description="generated (the LLM), extractive (the fallback), or unknown (does not know).")
    citations: list[AnswerCitationOut]
    removed_citations: list[int] = Field(description="Cited numbers that were not passages given: removed.")
    fallback: dict[str, str] | None = None
    model: str | None = None
    prompt_version: str | None = None
    best_similarity: float | None = None
    usage: dict[str, int] = {}
    passages: list[PassageOut]
    version: VersionOut
    timings: dict[str, float]
