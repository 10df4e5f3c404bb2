"""rag_evaluate's records: what crosses its task boundaries (ids, URIs, small metrics; never data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ragops.records import Record
from ragops.runs import RunRef


@dataclass(frozen=True)
class EvalSetRef(Record):
    """One evaluation set: where its queries and judgements are read from."""

    name: str                          # the set's name in the metrics ("golden", "beir-test", "synthetic-test"...)
    kind: str                          # an EvalSetKind
    uri: str                           # a golden file, a BEIR folder, or the dataset version's URI
    level: str                         # "doc" or "chunk": what its judgements name
    content_hash: str                  # the file's (or dataset version's) content hash
    split: str | None = None           # the BEIR qrels split, or the dataset split
    label_source: str | None = None    # dataset sets: the rows' label source
    artifact_id: int | None = None     # the eval_set or dataset artifact


@dataclass(frozen=True)
class EvalTarget(Record):
    """What one run evaluates, pinned when it starts: the collection version, its model, the reranker."""

    run: RunRef
    alias: str
    collection: str                    # the concrete collection version the alias pointed at
    collection_id: int | None
    collection_version: int | None
    model_id: str | None               # the embedding model ("embeddings:v2", "all-MiniLM-L6-v2"...)
    model_artifact_id: int | None
    reranker_id: str | None            # "reranker:v3", or None (the identity: no production reranker)
    reranker_artifact_id: int | None
    sets: tuple[EvalSetRef, ...] = ()
    skipped_sets: dict[str, str] = field(default_factory=dict)   # set -> why it was not evaluated

    def versions(self) -> dict[str, Any]:
        """The versions evaluated, as the evaluation artifact's params name them."""
        return {"alias": self.alias, "collection": self.collection, "collection_id": self.collection_id,
                "collection_version": self.collection_version, "model_id": self.model_id,
                "model_artifact_id": self.model_artifact_id, "reranker_id": self.reranker_id,
                "reranker_artifact_id": self.reranker_artifact_id}


@dataclass(frozen=True)
class RetrievalResult(Record):
    """Each set's retrieval metrics (``{set: {metric: value, "queries": n, "by_source": {...}}}``)."""

    report_uri: str
    sets: dict[str, Any]               # set -> its metrics


@dataclass(frozen=True)
class GenerationResult(Record):
    """The sample's answer checks, and the judge's scores when an LLM judged them."""

    report_uri: str
    metrics: dict[str, Any]
    judged: bool
    fallback: str | None = None        # why the judge did not run (no endpoint, sample size 0)


@dataclass(frozen=True)
class EvaluationOutcome(Record):
    """The run's evaluation artifact (a point of the trend) and what it found against the baseline."""

    evaluation_id: int
    version: int
    report_uri: str
    status: str
    baseline_runs: int
    regressions: tuple[dict[str, Any], ...] = ()
    changed: tuple[str, ...] = ()      # versions that changed since the baseline ("collection v1 -> v2")
