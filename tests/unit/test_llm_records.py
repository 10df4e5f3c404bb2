"""rag_finetune_llm's records cross task boundaries as XCom: JSON-safe, small, rebuilt unchanged;
the promotion emits the LLM asset (never the embedding model's)."""

from __future__ import annotations

import json

import pytest

from ragops.errors import InvalidInput
from ragops.llm.params import LLMFinetuneParams, LLMRollbackParams, llm_fallbacks
from ragops.llm.records import (
    InstructionBuild,
    InstructionDataset,
    LLMEvaluation,
    LLMGateDecision,
    LLMHyperparameters,
    LLMPromotion,
    LLMTrainingInputs,
    MergedModel,
    TrainedAdapter,
)
from ragops.models import ModelRef, Promotion
from ragops.records import Record
from ragops.runs import RunRef
from ragops.training.records import DatasetRef
from ragops.vocabulary import LLM_ASSET_URI, AnswerWriter, Compute, Status

RUN = RunRef("rag_finetune_llm/manual__1", "rag_finetune_llm", "manual__1", ("LLM (ragops_llm) -> extractive",))
BASE = ModelRef("path:tiny", "a" * 64, "/models/tiny", "llm", 1, 11)
ADAPTER = ModelRef("llm-adapter:v1", "b" * 64, "s3://b/ragops/models/llm/runs/0123/adapter", "llm", 1, 21)
CANDIDATE = ModelRef("llm:v2", "c" * 64, "s3://b/ragops/models/llm/merged/0456", "llm", 2, 22)
DATASET = InstructionDataset(5, 1, "d" * 64, "s3://b/ragops/datasets/llm-instructions/d", Status.USABLE, 33, 8, 4,
                             AnswerWriter.EXTRACTIVE, True)
INPUTS = LLMTrainingInputs(RUN, DATASET, BASE, LLMHyperparameters(16, 32.0, 0.05, ("all-linear",), True, 200, 2e-4,
                                                                  1024, 4, 1, 50, 42),
                           "k" * 64, "s3://b/ragops/models/llm/runs/0123", Compute.KUBERNETES,
                           ("--base-model", BASE.uri, "--load-in-4bit"))

RECORDS: list[Record] = [
    InstructionBuild(RUN, DatasetRef(4, 3, "s3://b/ragops/datasets/q", "q" * 64),
                     "s3://b/ragops/datasets/llm-instructions/d", "d" * 64, AnswerWriter.LLM, 33, 8, 12, 3,
                     {"calls": 41, "cache_hits": 0, "dropped_no_answer": 2}, 7, 8),
    DATASET, INPUTS, INPUTS.hyperparameters,
    TrainedAdapter(ADAPTER, False, {"global_step": 200, "resumed_from_step": 50, "peak_cuda_mb": None}),
    MergedModel(CANDIDATE, (ADAPTER, ADAPTER.replace(model_id="llm-adapter:v0", artifact_id=20)), (0.7, 0.3), "cat",
                False),
    LLMEvaluation("s3://b/ragops/evaluations/llm/c/report.json", 64, {"base": BASE.model_id, "live": "llm:v1",
                                                                       "candidate": CANDIDATE.model_id},
                  {"base": 11, "live": 11, "candidate": 22}, {"base": 512.4, "live": 512.4, "candidate": 390.7},
                  {"base": 1.0, "live": 1.0, "candidate": 0.98}, {"candidate": {"faithfulness": 0.9, "relevance": 0.8}}),
    LLMEvaluation("u", 6, {}, {}, {}, {}, None, "no ragops_llm connection"),
    LLMGateDecision(True, Status.PROMOTED, ("perplexity ... +23.75% lower",), 44, CANDIDATE, "llm:v1", 0.2375),
    LLMPromotion(True, CANDIDATE, 11, 1, (11,)),
    LLMPromotion(False, CANDIDATE, 11, 1, refused="gate rejected llm:v2: nothing to promote"),
    LLMFinetuneParams(),
    LLMFinetuneParams(base_model="v3", merge_adapters=[{"version": 2, "weight": 0.5}], compute=Compute.KUBERNETES,
                      load_in_4bit=True, target_modules=["q_proj", "v_proj"]),
    LLMRollbackParams(to_version=2, reason="v3 cites wrongly"),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_records_round_trip_through_xcom_and_json(record):
    xcom = record.to_xcom()
    assert json.loads(json.dumps(xcom)) == xcom
    assert type(record).from_xcom(json.loads(json.dumps(xcom))) == record


def test_the_promotion_emits_the_llm_asset_or_skips():
    promoted = LLMPromotion.of(Promotion(True, CANDIDATE, 11, 1, (11,)))
    assert promoted.skip_reason is None
    assert promoted.asset_events() == [(LLM_ASSET_URI, {"model_id": "llm:v2", "artifact_id": 22, "hash": "c" * 12,
                                                        "uri": CANDIDATE.uri, "rollback": False})]
    refused = LLMPromotion(False, CANDIDATE, 11, 1, refused="gate rejected llm:v2: nothing to promote")
    assert refused.asset_events() == [] and refused.skip_reason.startswith("gate rejected")
    again = LLMPromotion(False, CANDIDATE, 22, 2)
    assert again.skip_reason == "llm:v2 is already production: nothing new to serve"


def test_params_validate_and_name_their_fallbacks():
    params = LLMFinetuneParams.from_mapping({"merge_adapters": [{"version": 3}], "adapter_weight": 0.5})
    assert params.adapters_to_merge == [(3, 1.0)] and params.combination_type == "cat"
    with pytest.raises(InvalidInput, match="twice"):
        LLMFinetuneParams(merge_adapters=[{"version": 3}, {"version": 3, "weight": 0.2}])
    with pytest.raises(InvalidInput, match="merge_adapters"):
        LLMFinetuneParams.from_mapping({"merge_adapters": [{"weight": 0.2}]})
    with pytest.raises(InvalidInput, match="combination_type"):
        LLMFinetuneParams.from_mapping({"combination_type": "average"})

    class NoLLM:
        llm = None

        def training_config(self, compute):
            from ragops.training.compute import TrainingConfig

            return TrainingConfig.from_value(None, compute_override=compute)

    using = [f["using"] for f in llm_fallbacks(NoLLM(), LLMFinetuneParams())]
    assert using[0].startswith("a local process running train_llm.py") and "extractive" in using[1]
    assert "faithfulness and relevance skipped" in using[2]
    assert len(llm_fallbacks(NoLLM(), LLMFinetuneParams(answers=AnswerWriter.EXTRACTIVE,
                                                        compute=Compute.KUBERNETES))) == 1
