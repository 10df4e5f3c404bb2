"""What flows between rag_finetune_llm's tasks: ids, URIs, counts and headline metrics, never a path.

The instruction data, the adapter and the merged model live in the artifact store; a model crosses a
task boundary as a ``ModelRef`` (kind ``model`` or ``adapter``, name ``llm``), and each task
materialises what it needs on its own worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ragops.models import ModelRef, Promotion
from ragops.records import Record
from ragops.runs import RunRef
from ragops.training.records import DatasetRef
from ragops.vocabulary import LLM_ASSET_URI, AnswerWriter, Compute, Status


@dataclass(frozen=True)
class InstructionBuild(Record):
    """Instruction rows built from a query dataset, staged in the store (not yet a registered version)."""

    run: RunRef
    source: DatasetRef                 # the synthetic-queries version the questions and passages come from
    uri: str                           # folder: train.jsonl, test.jsonl (train_llm.py reads <split>.jsonl)
    content_hash: str                  # the instruction dataset's identity: a hash of its rows
    answers: AnswerWriter              # who wrote the reference answers (llm | extractive)
    rows_train: int
    rows_test: int
    docs_train: int
    docs_test: int
    stats: dict[str, Any]              # answer writer: calls, cache hits, tokens, rows dropped and why
    prompt_id: int | None = None       # the answer prompt's artifact (LLM answers only)
    llm_id: int | None = None          # the answer writer's artifact (LLM answers only)

    @property
    def run_key(self) -> str:
        return self.run.run_key


@dataclass(frozen=True)
class InstructionDataset(Record):
    """A registered, validated version of the instruction dataset."""

    dataset_id: int
    version: int
    content_hash: str
    uri: str
    status: Status                     # usable (a failed suite is recorded as failed_dq and stops the run)
    rows_train: int
    rows_test: int
    source_dataset_id: int
    answers: AnswerWriter
    dq_success: bool


@dataclass(frozen=True)
class LLMHyperparameters(Record):
    lora_r: int
    lora_alpha: float
    lora_dropout: float
    target_modules: tuple[str, ...]
    load_in_4bit: bool
    max_steps: int
    lr: float
    max_seq_length: int
    batch_size: int
    grad_accum: int
    save_steps: int
    seed: int


@dataclass(frozen=True)
class LLMTrainingInputs(Record):
    """Everything the trainer is given, and where its output goes (keyed by these inputs)."""

    run: RunRef
    dataset: InstructionDataset
    base_model: ModelRef
    hyperparameters: LLMHyperparameters
    train_key: str                     # hash of dataset, base model and hyperparameters
    output_uri: str                    # the checkpoint mirror: checkpoints/, adapter/, metrics.json
    compute: Compute
    args: tuple[str, ...]              # train_llm.py's arguments: the same in a pod and a local process

    @property
    def run_key(self) -> str:
        return self.run.run_key


@dataclass(frozen=True)
class TrainedAdapter(Record):
    """The trainer's finished LoRA adapter, registered (kind ``adapter``)."""

    adapter: ModelRef
    skipped: bool                      # the output location already held a finished run: nothing was trained
    metrics: dict[str, Any]            # metrics.json: steps, resumed_from_step, losses, runtime, device


@dataclass(frozen=True)
class MergedModel(Record):
    """The candidate LLM: the base with the adapters merged in, registered with its lineage."""

    candidate: ModelRef
    adapters: tuple[ModelRef, ...]
    weights: tuple[float, ...]
    method: str                        # merge_and_unload (one adapter, weight 1) or the combination type
    skipped: bool                      # the merged model was already in the store: not merged again


@dataclass(frozen=True)
class LLMEvaluation(Record):
    """Base, live and candidate scored on the same held-out rows; the whole report is an artifact."""

    report_uri: str
    rows: int
    model_ids: dict[str, str]                  # label (base, live, candidate) -> model id
    artifact_ids: dict[str, int | None]        # label -> registry id
    perplexity: dict[str, float]               # label -> perplexity of the reference answers
    citation_valid_rate: dict[str, float]      # label -> share of generated answers citing only given passages
    judge: dict[str, Any] | None               # label -> {faithfulness, relevance}, with an LLM endpoint
    judge_skipped: str | None = None           # why there are no judge scores


@dataclass(frozen=True)
class LLMGateDecision(Record):
    promote: bool
    verdict: Status                    # promoted or rejected
    reasons: tuple[str, ...]
    evaluation_id: int
    candidate: ModelRef
    live_model: str
    delta: float | None = None         # relative perplexity drop of the candidate against the live LLM
    same_as_live: bool = False


@dataclass(frozen=True)
class LLMPromotion(Promotion):
    """A finetuned LLM made production (by the gate or a rollback): emits the LLM asset."""

    @classmethod
    def of(cls, promotion: Promotion) -> LLMPromotion:
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
        return [(LLM_ASSET_URI, {"model_id": self.model.model_id, "artifact_id": self.model.artifact_id,
                                 "hash": self.model.content_hash[:12], "uri": self.model.uri,
                                 "rollback": self.rollback})]
