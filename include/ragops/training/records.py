"""What flows between rag_finetune_embeddings' tasks: ids, URIs and headline metrics, never a path.

A model crosses a task boundary as a ``ModelRef`` and a dataset as a ``DatasetRef``; each task
materialises what it needs on its own worker (``Services.model_path``). The promotion is
``ragops.models.Promotion``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ragops.models import ModelRef
from ragops.records import Record
from ragops.runs import RunRef
from ragops.vocabulary import MODEL_NAME, Compute, Status


@dataclass(frozen=True)
class DatasetRef(Record):
    """A registered version of the training dataset."""

    artifact_id: int
    version: int
    uri: str
    content_hash: str


@dataclass(frozen=True)
class Hyperparameters(Record):
    epochs: float
    batch_size: int
    lr: float
    matryoshka_dims: tuple[int, ...]
    max_steps: int
    seed: int
    checkpoint_steps: int


@dataclass(frozen=True)
class TrainingInputs(Record):
    """Everything the trainer is given, and where its output goes (keyed by these inputs)."""

    run: RunRef
    dataset: DatasetRef
    base_model: ModelRef
    hyperparameters: Hyperparameters
    train_key: str                 # hash of dataset, base model and hyperparameters
    output_uri: str                # the trainer's output location (checkpoints, model/, metrics.json)
    compute: Compute
    args: tuple[str, ...]          # train_embeddings.py's arguments: the same in a pod and a local process
    model_name: str = MODEL_NAME

    @property
    def run_key(self) -> str:
        return self.run.run_key


@dataclass(frozen=True)
class TrainedModel(Record):
    """The trainer's finished output."""

    model_uri: str
    skipped: bool                  # the output location already held a finished model: nothing was trained
    metrics: dict[str, Any]        # metrics.json: steps, epochs, loss, runtime, device


@dataclass(frozen=True)
class Evaluation(Record):
    """Base, live and candidate scored by one evaluator; the whole report is an artifact."""

    report_uri: str
    chart_uri: str
    primary_set: str
    dims: tuple[int, ...]
    model_ids: dict[str, str]                  # label (base, live, candidate) -> model id
    artifact_ids: dict[str, int | None]        # label -> registry id
    ndcg_at_10: dict[str, float]               # label -> nDCG@10 on the primary set at the full dim


@dataclass(frozen=True)
class GateDecision(Record):
    """The gate's verdict on the candidate, recorded as an evaluation artifact."""

    promote: bool
    verdict: Status                # promoted or rejected
    reasons: tuple[str, ...]
    evaluation_id: int
    candidate: ModelRef
    live_model: str                # the model id that was live when the gate compared
    delta: float | None = None     # candidate minus live on the primary metric
    same_as_live: bool = False     # the candidate is the live model itself (same weights): nothing new
