"""The finetune records cross task boundaries as XCom: JSON-safe, small, and rebuilt unchanged."""

from __future__ import annotations

import json

import pytest

from ragops.models import ModelRef, Promotion
from ragops.records import Record
from ragops.runs import RunRef
from ragops.training.params import FinetuneParams, ModelRollbackParams
from ragops.training.records import (
    DatasetRef,
    Evaluation,
    GateDecision,
    Hyperparameters,
    TrainedModel,
    TrainingInputs,
)
from ragops.vocabulary import BASE_MODEL_URI, Compute, Status

RUN = RunRef("rag_finetune_embeddings/manual__1", "rag_finetune_embeddings", "manual__1",
             ("Kubernetes GPU pod -> a local process running train_embeddings.py",))
BASE = ModelRef("base:all-MiniLM-L6-v2", "a" * 64, BASE_MODEL_URI, "embeddings", 1, 11)
CANDIDATE = ModelRef("embeddings:v3", "c" * 64, "s3://aws_default@bucket/ragops/models/embeddings/runs/0123/model",
                     "embeddings", 3, 33)
INPUTS = TrainingInputs(
    RUN, DatasetRef(7, 2, "s3://aws_default@bucket/ragops/datasets/d", "d" * 64), BASE,
    Hyperparameters(1.0, 32, 2e-5, (384, 256, 128, 64), -1, 42, 100), "k" * 64,
    "s3://aws_default@bucket/ragops/models/embeddings/runs/0123", Compute.KUBERNETES,
    ("--dataset-uri", "s3://aws_default@bucket/ragops/datasets/d", "--lr", "2e-05"))

RECORDS: list[Record] = [
    INPUTS,
    INPUTS.dataset,
    INPUTS.hyperparameters,
    TrainedModel(f"{INPUTS.output_uri}/model", False, {"global_step": 3, "train_loss": 1.25, "device": "cpu",
                                                       "peak_cuda_mb": None, "matryoshka_dims": [384, 128]}),
    CANDIDATE,
    Evaluation("s3://aws_default@bucket/ragops/evaluations/embeddings/c/report.json",
               "s3://aws_default@bucket/ragops/evaluations/embeddings/c/ndcg_by_dim.png", "synthetic-test",
               (384, 128), {"base": BASE.model_id, "live": "embeddings:v2", "candidate": CANDIDATE.model_id},
               {"base": 11, "live": 22, "candidate": 33, "nothing": None},
               {"base": 0.61, "live": 0.12, "candidate": 0.64}),
    GateDecision(True, Status.PROMOTED, ("ndcg@10 on synthetic-test@384: +0.03", "no guard regresses"), 44,
                 CANDIDATE, "embeddings:v2", 0.03),
    GateDecision(False, Status.REJECTED, ("the candidate is the live model itself",), 45, CANDIDATE,
                 CANDIDATE.model_id, 0.0, same_as_live=True),
    Promotion(True, CANDIDATE, 22, 2, (22,)),
    Promotion(False, CANDIDATE, 22, 2, refused="gate rejected embeddings:v3: nothing to promote"),
    Promotion(True, BASE, 33, 3, (33,), rollback=True),
    FinetuneParams(),
    FinetuneParams(dataset_version=2, compute=Compute.LOCAL, matryoshka_dims=[384, 128], beir_max_queries=8),
    ModelRollbackParams(to_version=2, reason="v3 hurts recall"),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_records_round_trip_through_xcom_and_json(record):
    data = record.to_xcom()
    wire = json.loads(json.dumps(data))        # what XCom stores and hands back
    assert wire == data
    again = type(record).from_xcom(wire)
    assert again == record and again.to_xcom() == data


def test_enums_and_nested_records_come_back_typed():
    inputs = TrainingInputs.from_xcom(json.loads(json.dumps(INPUTS.to_xcom())))
    assert inputs.compute is Compute.KUBERNETES and isinstance(inputs.base_model, ModelRef)
    assert isinstance(inputs.run, RunRef) and inputs.run_key == RUN.run_key
    assert inputs.hyperparameters.matryoshka_dims == (384, 256, 128, 64) and isinstance(inputs.args, tuple)
    decision = GateDecision.from_xcom(json.loads(json.dumps(RECORDS[6].to_xcom())))
    assert decision.verdict is Status.PROMOTED and isinstance(decision.candidate, ModelRef)


def test_promotion_skips_with_its_reason_and_emits_only_when_promoted():
    promoted, refused, rolled_back = RECORDS[8], RECORDS[9], RECORDS[10]
    assert promoted.skip_reason is None and promoted.asset_events()[0][1]["model_id"] == "embeddings:v3"
    assert refused.skip_reason == "gate rejected embeddings:v3: nothing to promote" and refused.asset_events() == []
    assert rolled_back.asset_events()[0][1]["rollback"] is True
    assert "already production" in Promotion(False, CANDIDATE, 33, 3).skip_reason
