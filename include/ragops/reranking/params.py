"""rag_train_reranker's params: the trigger form, the CLI, the steps, once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragops.errors import InvalidInput
from ragops.params import ParamSpec, param
from ragops.training.gate import DEFAULT_GUARD_TOLERANCE, DEFAULT_MARGIN
from ragops.vocabulary import (
    ALIAS_PATTERN,
    DATASET_NAME,
    DEFAULT_ALIAS,
    LEARNING_RATE,
    RERANKER_NAME,
    TRAINING_VARIABLE,
    Compute,
    RerankerKind,
    SearchMode,
)

if TYPE_CHECKING:
    from ragops.services import Services

# Hard negatives scoring above (1 - margin) x the positive's dense score are dropped as likely
# false negatives (sentence-transformers' mine_hard_negatives ``relative_margin``; NV-Retriever's 95%).
DEFAULT_NEGATIVE_MARGIN = 0.05


@dataclass(frozen=True)
class RerankerParams(ParamSpec):
    kind: RerankerKind = param(RerankerKind.LTR, "ltr: LightGBM LambdaRank over first-stage features (CPU, "
                                                 "milliseconds per query); cross-encoder: a MiniLM cross-encoder "
                                                 "(GPU pod or local process).", enum=list(RerankerKind))
    alias: str = param(DEFAULT_ALIAS, "The live collection whose first stage is mined and evaluated.",
                       pattern=ALIAS_PATTERN)
    dataset_version: int | None = param(
        None, f"Version of the {DATASET_NAME} dataset; empty = the latest usable one (or the imported one).", minimum=1)
    labels_source: str | None = param(
        None, "Labelled queries to import first: a BEIR qrels .tsv (queries.jsonl in its folder's parent), a BEIR "
              "folder (with labels_split) or a JSONL of {query, doc_id|chunk_id}. Trains on the resulting version.")
    labels_split: str | None = param(None, "The qrels split when labels_source is a BEIR folder.")
    labels_merge: str = param("latest", "Merge the imported labels into: latest (usable version), none, or a "
                                        "version number.")
    mode: SearchMode = param(SearchMode.HYBRID, "The first stage the reranker reorders.", enum=list(SearchMode))
    top_n: int = param(20, "First-stage candidates reranked (and mined for training).", minimum=2, maximum=1000)
    negative_margin: float = param(DEFAULT_NEGATIVE_MARGIN, "Drop hard negatives whose dense score exceeds (1 - "
                                                            "margin) x the positive's: likely false negatives.",
                                   minimum=0, maximum=1)
    negatives_per_query: int = param(5, "Cross-encoder: hard negatives per positive.", minimum=1)
    max_train_queries: int | None = param(None, "Mine at most this many training queries (empty: all).", minimum=1)
    trees: int = param(200, "LTR: boosting rounds.", minimum=1)
    leaves: int = param(15, "LTR: leaves per tree.", minimum=2)
    ltr_learning_rate: float = param(0.05, "LTR: shrinkage.", exclusiveMinimum=0)
    min_data_in_leaf: int = param(20, "LTR: the fewest candidates per leaf.", minimum=1)
    epochs: float = param(1.0, "Cross-encoder: training epochs.", exclusiveMinimum=0)
    batch_size: int = param(16, "Cross-encoder: batch size.", minimum=1)
    lr: float = param(LEARNING_RATE, "Cross-encoder: learning rate.", exclusiveMinimum=0)
    max_steps: int = param(-1, "Cross-encoder: stop after this many steps (-1: all epochs).", minimum=-1)
    seed: int = param(42, "Seed for data order and initialisation.")
    margin: float = param(DEFAULT_MARGIN, f"Required nDCG@10 gain over the live {RERANKER_NAME} (or the first stage "
                                          "alone) on the held-out queries to promote.", minimum=0)
    guard_tolerance: float = param(DEFAULT_GUARD_TOLERANCE, "Largest nDCG@10 loss allowed on any guard set, against "
                                                            "the live reranker and the first stage alone.", minimum=0)
    golden_queries: str | None = param(None, "JSONL of human-written queries {query, chunk_id|doc_id}: a guard set.")
    beir_folder: str | None = param(None, "A BEIR folder indexed in the collection: its qrels are a guard set.")
    beir_split: str = param("test", "The BEIR qrels split of the guard set.")
    beir_max_queries: int | None = param(None, "Evaluate only the first N BEIR queries.", minimum=1)
    compute: Compute | None = param(None, f"Cross-encoder: override the Variable {TRAINING_VARIABLE}'s compute.",
                                    enum=list(Compute))

    def check(self) -> None:
        if self.labels_merge not in ("latest", "none") and not str(self.labels_merge).isdigit():
            raise InvalidInput(f"labels_merge={self.labels_merge!r}: expected latest, none or a dataset version")


def reranker_fallbacks(svc: Services, params: RerankerParams) -> list[dict[str, str]]:
    """``run_opener``'s extra fallbacks: a local process standing in for the cross-encoder's GPU pod."""
    if RerankerKind(params.kind) != RerankerKind.CROSS_ENCODER:
        return []
    if svc.training_config(params.compute).compute != Compute.LOCAL:
        return []
    return [{"service": "Kubernetes GPU pod", "using": "a local process running train_cross_encoder.py",
             "reason": f"{TRAINING_VARIABLE}'s compute is 'local'"}]
