"""rag_finetune_embeddings' and rag_model_rollback's params: the trigger form, the CLI, the steps, once."""

from __future__ import annotations

from dataclasses import dataclass

from ragops.approval import approval_timeout_param, require_approval_param
from ragops.params import ParamSpec, param
from ragops.training.evaluate import DEFAULT_KS
from ragops.training.gate import DEFAULT_GUARD_TOLERANCE, DEFAULT_MARGIN, SERVED_MAX_QUERIES
from ragops.vocabulary import (
    ALIAS_PATTERN,
    BASE_MODEL_NAME,
    DATASET_NAME,
    DEFAULT_ALIAS,
    LEARNING_RATE,
    MATRYOSHKA_DIMS,
    MODEL_NAME,
    TRAINING_VARIABLE,
    Compute,
)


@dataclass(frozen=True)
class FinetuneParams(ParamSpec):
    dataset_version: int | None = param(
        None, f"Version of the {DATASET_NAME} dataset; empty = the latest usable one.", minimum=1)
    base_model: str = param(
        "base", f"Model to finetune: base ({BASE_MODEL_NAME}), production, v<N> or a model folder.")
    epochs: float = param(1.0, "Training epochs.", exclusiveMinimum=0)
    batch_size: int = param(32, "Batch size (in-batch negatives grow with it; above 64 the cached loss is used).",
                            minimum=2)
    lr: float = param(LEARNING_RATE, "Learning rate.", exclusiveMinimum=0)
    matryoshka_dims: list[int] = param(
        description="Matryoshka dims trained and evaluated (the full size is always included).",
        factory=lambda: list(MATRYOSHKA_DIMS), items={"type": "integer", "minimum": 8})
    max_steps: int = param(-1, "Stop after this many steps (-1: all epochs).", minimum=-1)
    checkpoint_steps: int = param(100, "Checkpoint every N steps; a restarted trainer resumes from the last one.",
                                  minimum=1)
    seed: int = param(42, "Seed for data order and initialisation.")
    alias: str = param(DEFAULT_ALIAS, "The live collection the gate scores each model in, as it serves (hybrid "
                                      "with its fusion, over a pool of its top hits for the test queries).",
                       pattern=ALIAS_PATTERN)
    served_max_queries: int = param(SERVED_MAX_QUERIES, "The served-mode set scores at most this many test queries "
                                                        "(a fixed sample by query hash); each model encodes up to "
                                                        "60 pooled passages a query.", minimum=1)
    margin: float = param(DEFAULT_MARGIN, "Required nDCG@10 gain over the live model (full dim, in the served mode; "
                                          "the test split alone when the collection cannot be searched) to promote.",
                          minimum=0)
    guard_tolerance: float = param(DEFAULT_GUARD_TOLERANCE, "Largest nDCG@10 loss allowed on any other dim or "
                                                            "guard set.", minimum=0)
    ks: list[int] = param(description="Recall@k cut-offs.", factory=lambda: list(DEFAULT_KS),
                          items={"type": "integer", "minimum": 1})
    compute: Compute | None = param(None, f"Override the Variable {TRAINING_VARIABLE}'s compute for this run.",
                                    enum=list(Compute))
    golden_queries: str | None = param(None, "JSONL of human-written queries {query, chunk_id|doc_id}: a guard set.")
    beir_folder: str | None = param(None, "A BEIR folder (corpus.jsonl, queries.jsonl, qrels/): a doc-level guard set.")
    beir_split: str = param("test", "The BEIR qrels split.")
    beir_max_queries: int | None = param(None, "Evaluate only the first N BEIR queries (with their documents).",
                                         minimum=1)
    beir_distractors: int = param(1000, "With beir_max_queries: how many other BEIR documents join the corpus.",
                                  minimum=0)
    # Human in the loop (opt-in): a person confirms the promotion; unanswered, nothing is promoted.
    require_approval: bool | None = require_approval_param("the promotion")
    approval_timeout_hours: float = approval_timeout_param()


@dataclass(frozen=True)
class ModelRollbackParams(ParamSpec):
    to_version: int = param(1, f"The model version (of {MODEL_NAME!r}) to make production again.", minimum=1)
    reason: str = param("", "Why (recorded in the stage history).")
