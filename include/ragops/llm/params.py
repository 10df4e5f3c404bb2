"""rag_finetune_llm's and rag_llm_rollback's params: the trigger form, the CLI and the steps' choices, once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragops.errors import InvalidInput
from ragops.params import ParamSpec, param
from ragops.vocabulary import (
    DATASET_NAME,
    LLM_CONN_ID,
    LLM_LEARNING_RATE,
    LLM_MODEL_NAME,
    TRAINING_VARIABLE,
    AnswerWriter,
    Compute,
)

if TYPE_CHECKING:
    from ragops.services import Services

# How several adapters are combined before the merge (peft's add_weighted_adapter). "cat" is the
# default because it is the exact weighted sum of the adapters' updates (sum_i w_i * s_i * B_i @ A_i,
# any ranks); "linear" averages the factors instead, so cross terms B_i @ A_j appear and the result
# is not the weighted sum (see training/merge_adapters.py).
COMBINATION_TYPES = ("cat", "linear", "svd", "ties", "dare_linear", "dare_ties", "magnitude_prune")
DEFAULT_COMBINATION = "cat"
DEFAULT_MARGIN = 0.02            # relative perplexity drop the candidate needs over the live LLM
DEFAULT_GUARD_TOLERANCE = 0.02   # largest drop allowed in citation validity or a judge score

# The fallback a run names when answers="auto" finds no LLM endpoint.
EXTRACTIVE_FALLBACK = {"service": f"LLM ({LLM_CONN_ID})",
                       "using": "extractive reference answers (the passage's best sentences, cited)",
                       "reason": f"no {LLM_CONN_ID} connection"}
JUDGE_FALLBACK = {"service": f"LLM judge ({LLM_CONN_ID})",
                  "using": "perplexity and citation validity only (faithfulness and relevance skipped)",
                  "reason": f"no {LLM_CONN_ID} connection"}

_ADAPTER_ITEM = {"type": "object", "required": ["version"], "additionalProperties": False,
                 "properties": {"version": {"type": "integer", "minimum": 1},
                                "weight": {"type": "number", "exclusiveMinimum": 0}}}


@dataclass(frozen=True)
class LLMFinetuneParams(ParamSpec):
    dataset_version: int | None = param(
        None, f"Version of the {DATASET_NAME} dataset the questions come from; empty = the latest usable one "
              "(a reviewed version included).", minimum=1)
    base_model: str = param(
        "production", f"LLM to finetune: production (the current production {LLM_MODEL_NAME!r}), v<N> (a registered "
                      "version), a model folder, or a model's URI in the artifact store.", minLength=1)
    lora_r: int = param(16, "LoRA rank.", minimum=1, maximum=1024)
    lora_alpha: float = param(32.0, "LoRA alpha (the update is scaled by alpha / r).", exclusiveMinimum=0)
    lora_dropout: float = param(0.05, "LoRA dropout.", minimum=0, maximum=0.9)
    target_modules: list[str] = param(description="Modules that get LoRA (all-linear: every linear layer but the head).",
                                      factory=lambda: ["all-linear"], items={"type": "string", "minLength": 1},
                                      minItems=1)
    load_in_4bit: bool = param(False, "QLoRA: the base in 4-bit (bitsandbytes NF4); needs a CUDA GPU (the pod).")
    max_steps: int = param(200, "Optimisation steps.", minimum=1)
    lr: float = param(LLM_LEARNING_RATE, "Learning rate.", exclusiveMinimum=0)
    max_seq_length: int = param(1024, "Tokens per row (prompt + answer), cut at the end.", minimum=32)
    batch_size: int = param(4, "Rows per micro-batch.", minimum=1)
    grad_accum: int = param(1, "Micro-batches per optimisation step.", minimum=1)
    save_steps: int = param(50, "Checkpoint interval: a checkpoint every N steps, mirrored to the artifact store; a "
                                "retried or restarted trainer resumes from the newest complete one.", minimum=1)
    seed: int = param(42, "Seed of data order, initialisation and the passages' order in the prompts.")
    adapter_weight: float = param(1.0, "Weight of this run's adapter in the merge.", exclusiveMinimum=0)
    merge_adapters: list[dict[str, Any]] = param(
        description=f"Earlier adapters (versions of the {LLM_MODEL_NAME!r} adapters) merged with this run's, e.g. "
                    '[{"version": 2, "weight": 0.5}]; weight defaults to 1.', factory=list, items=_ADAPTER_ITEM)
    combination_type: str = param(DEFAULT_COMBINATION, "How several adapters are combined before the merge (cat: "
                                                       "the exact weighted sum of their updates).",
                                  enum=list(COMBINATION_TYPES))
    answers: AnswerWriter = param(AnswerWriter.AUTO, f"Who writes the reference answers: auto (the LLM when the "
                                                     f"{LLM_CONN_ID} connection exists, else extractive), llm, or "
                                                     "extractive (the passage's best sentences, cited).",
                                  enum=list(AnswerWriter))
    llm_model: str = param("", "Model of the answer writer and the judge; empty = the connection extra 'model'.")
    passages_per_prompt: int = param(3, "Numbered passages in each prompt: the positive and distractors.", minimum=1,
                                     maximum=10)
    passage_chars: int = param(1200, "Characters kept of each passage in a prompt.", minimum=40)
    max_rows: int = param(0, "Use at most this many question pairs (0 = all).", minimum=0)
    eval_sample_size: int = param(64, "Held-out rows the evaluation scores (perplexity, citations, judge).",
                                  minimum=1)
    max_new_tokens: int = param(128, "Tokens each model may generate per held-out question.", minimum=1)
    margin: float = param(DEFAULT_MARGIN, "Required relative perplexity drop of the candidate against the live LLM "
                                          "(0.02 = 2% lower) to promote.", minimum=0)
    guard_tolerance: float = param(DEFAULT_GUARD_TOLERANCE, "Largest drop allowed in citation validity or a judge "
                                                            "score against the live LLM.", minimum=0)
    compute: Compute | None = param(None, f"Override the Variable {TRAINING_VARIABLE}'s compute for this run.",
                                    enum=list(Compute))

    def check(self) -> None:
        versions = [a["version"] for a in self.merge_adapters]
        if len(set(versions)) != len(versions):
            raise InvalidInput(f"param merge_adapters names an adapter version twice: {versions}")

    @property
    def adapters_to_merge(self) -> list[tuple[int, float]]:
        return [(int(a["version"]), float(a.get("weight", 1.0))) for a in self.merge_adapters]


@dataclass(frozen=True)
class LLMRollbackParams(ParamSpec):
    to_version: int = param(1, f"The LLM version (of {LLM_MODEL_NAME!r}) to make production again.", minimum=1)
    reason: str = param("", "Why (recorded in the stage history).")


def llm_fallbacks(svc: Services, params: LLMFinetuneParams) -> list[dict[str, str]]:
    """``run_opener``'s extra fallbacks: a local process for the GPU pod, extractive answers and no
    judge without an LLM endpoint."""
    from ragops.llm.compute import llm_compute_fallbacks

    fallbacks = llm_compute_fallbacks(svc.training_config(params.compute))
    if svc.llm is None:
        if params.answers == AnswerWriter.AUTO:
            fallbacks.append(dict(EXTRACTIVE_FALLBACK))
        fallbacks.append(dict(JUDGE_FALLBACK))
    return fallbacks
