"""What flows between rag_train_reranker's tasks: ids, URIs, counts and headline metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ragops.labels import LabelsImport
from ragops.models import Promotion
from ragops.records import Record
from ragops.runs import RunRef
from ragops.training.records import DatasetRef
from ragops.vocabulary import RERANKER_ASSET_URI, RERANKER_NAME, Compute, RerankerKind, SearchMode


@dataclass(frozen=True)
class RerankerHyperparameters(Record):
    kind: RerankerKind
    mode: SearchMode
    top_n: int
    negative_margin: float
    negatives_per_query: int
    max_train_queries: int | None
    trees: int
    leaves: int
    ltr_learning_rate: float
    min_data_in_leaf: int
    epochs: float
    batch_size: int
    lr: float
    max_steps: int
    seed: int


@dataclass(frozen=True)
class RerankerInputs(Record):
    """The dataset, the collection version mined and evaluated, the hyperparameters."""

    run: RunRef
    dataset: DatasetRef
    alias: str
    collection: str                  # the collection version the alias pointed at when the run began
    collection_id: int | None
    hyperparameters: RerankerHyperparameters
    compute: Compute
    imported: LabelsImport | None = None
    model_name: str = RERANKER_NAME

    @property
    def run_key(self) -> str:
        return self.run.run_key


@dataclass(frozen=True)
class MinedData(Record):
    """Training candidates from the first stage (one table; the cross-encoder's pairs beside it)."""

    uri: str                          # parquet: query, chunk, label, first-stage features
    content_hash: str
    queries: int                      # training queries with a positive in the top N
    missed: int                       # training queries whose positive the first stage missed
    positives: int
    negatives: int
    false_negatives: int              # dropped by the margin
    same_document: int                # other chunks of a positive's document: neither positive nor negative
    train_key: str                    # hash of the mined data, the hyperparameters and the base model
    output_uri: str                   # the trainer's output location (model/, metrics.json)
    pairs_uri: str | None = None      # cross-encoder: a DatasetDict of (query, passage, label)
    args: tuple[str, ...] = ()        # cross-encoder: train_cross_encoder.py's arguments (pod or local)


@dataclass(frozen=True)
class TrainedReranker(Record):
    model_uri: str
    skipped: bool                     # the output location already held a finished model
    metrics: dict[str, Any]


@dataclass(frozen=True)
class RerankerEvaluation(Record):
    """First stage alone, the live reranker and the candidate on the same candidates, per set."""

    report_uri: str
    collection: str
    primary_set: str
    sets: tuple[str, ...]
    model_ids: dict[str, str]                  # first_stage, live, candidate -> reranker id
    artifact_ids: dict[str, int | None]
    ndcg_at_10: dict[str, float]               # label -> nDCG@10 on the primary set


@dataclass(frozen=True)
class RerankerPromotion(Promotion):
    """A reranker made production (by the gate or a rollback): emits the reranker asset."""

    @classmethod
    def of(cls, promotion: Promotion) -> RerankerPromotion:
        return cls(promotion.promoted, promotion.model, promotion.previous_artifact_id, promotion.previous_version,
                   promotion.archived, promotion.rollback, promotion.refused)

    @property
    def skip_reason(self) -> str | None:
        if self.promoted:
            return None
        return self.refused or f"{self.model.model_id} is already production: nothing new to serve"

    def asset_events(self) -> list[tuple[str, dict[str, Any]]]:
        if not self.promoted:
            return []
        return [(RERANKER_ASSET_URI, {"model_id": self.model.model_id, "artifact_id": self.model.artifact_id,
                                      "hash": self.model.content_hash[:12], "rollback": self.rollback})]
