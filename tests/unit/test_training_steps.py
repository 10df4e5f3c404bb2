"""The finetune steps as plain functions of the services: real Postgres and files, no Airflow, no training.

The trainer's output is written by hand (what a pod leaves behind); tests/dags runs the real trainer.
"""

from __future__ import annotations

import json

import pytest

from ragops.config import RagopsSettings
from ragops.errors import InvalidInput
from ragops.models import ModelRef, promote, register_base_model, register_candidate
from ragops.runs import RunRef
from ragops.services import Services
from ragops.training import promotion, steps
from ragops.training.compute import TrainingConfig
from ragops.training.params import FinetuneParams, ModelRollbackParams
from ragops.training.records import Evaluation
from ragops.training.summary import summarize, summarize_rollback
from ragops.vocabulary import BASE_MODEL_URI, DATASET_NAME, MODEL_NAME, ArtifactKind, Compute, Relation, Stage, Status

DIMS = ("384", "128")


@pytest.fixture
def svc(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("RAGOPS_MODEL_CACHE", str(tmp_path / "model-cache"))
    settings = RagopsSettings.from_env({"RAGOPS_PG_DSN": registry.dsn, "RAGOPS_SCHEMA": registry.schema,
                                        "RAGOPS_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
                                        "RAGOPS_VECTOR_DIR": str(tmp_path / "vectors")})
    services = Services(settings)
    yield services
    services.close()


@pytest.fixture
def run(svc):
    key = svc.registry.start_run("rag_finetune_embeddings", "manual__1")
    return RunRef(key, "rag_finetune_embeddings", "manual__1")


def add_dataset(svc: Services, tag: str, status: str = Status.USABLE):
    rel = f"datasets/{tag}"
    svc.artifacts.write_json(f"{rel}/dataset_dict.json", {"splits": ["train", "test"]})
    return svc.registry.record_artifact(ArtifactKind.DATASET, DATASET_NAME, tag.ljust(64, "0"), svc.artifacts.uri(rel),
                                        status=status)


def fake_model(svc: Services, rel: str, marker: str) -> str:
    """A model folder as the trainer leaves it (config and weights), in the artifact store."""
    svc.artifacts.write_json(f"{rel}/config.json", {"marker": marker})
    svc.artifacts.write_bytes(f"{rel}/model.safetensors", marker.encode())
    return svc.artifacts.uri(rel)


def publish_as_the_trainer(svc: Services, rel: str) -> None:
    """The manifest the trainer writes last (train_embeddings.Output.publish_dir): without it the
    task takes the folder for an upload cut short."""
    from ragops.artifacts import MANIFEST, build_manifest

    svc.artifacts.write_json(f"{rel}/{MANIFEST}", {**build_manifest(svc.artifacts.local_path(rel)), "complete": True})


def test_inputs_name_the_dataset_the_base_model_and_an_output_keyed_by_them(svc, run):
    with pytest.raises(InvalidInput, match="run rag_synthetic_data first"):
        steps.resolve_inputs(svc, FinetuneParams(), run, TrainingConfig())
    v1 = add_dataset(svc, "d1")
    add_dataset(svc, "d2", status=Status.FAILED_DQ)
    with pytest.raises(InvalidInput, match="not usable"):
        steps.resolve_inputs(svc, FinetuneParams(dataset_version=2), run, TrainingConfig())
    with pytest.raises(InvalidInput, match="no version 9"):
        steps.resolve_inputs(svc, FinetuneParams(dataset_version=9), run, TrainingConfig())

    inputs = steps.resolve_inputs(svc, FinetuneParams(), run, TrainingConfig())
    assert inputs.dataset.artifact_id == v1.id and inputs.run == run and inputs.compute is Compute.LOCAL
    assert inputs.base_model.uri == BASE_MODEL_URI and inputs.base_model.artifact_id is not None
    assert inputs.hyperparameters.lr == 2e-5 and inputs.hyperparameters.matryoshka_dims == (384, 256, 128, 64)
    args = list(inputs.args)
    assert args[args.index("--dataset-uri") + 1] == v1.uri and args[args.index("--base-model") + 1] == BASE_MODEL_URI
    assert args[args.index("--output-uri") + 1] == inputs.output_uri
    assert svc.artifacts.rel_of(inputs.output_uri).startswith(f"models/{MODEL_NAME}/runs/")
    # Same inputs, same output location (a re-run finds its model); other hyperparameters, another.
    assert steps.resolve_inputs(svc, FinetuneParams(), run, TrainingConfig()).output_uri == inputs.output_uri
    assert steps.resolve_inputs(svc, FinetuneParams(lr=3e-5), run, TrainingConfig()).output_uri != inputs.output_uri
    with pytest.raises(InvalidInput, match="object-storage artifact root"):
        steps.resolve_inputs(svc, FinetuneParams(), run, TrainingConfig(compute=Compute.KUBERNETES))


def test_train_runs_the_pod_once_then_finds_the_finished_model(svc, run):
    add_dataset(svc, "d1")
    inputs = steps.resolve_inputs(svc, FinetuneParams(), run, TrainingConfig()).replace(compute=Compute.KUBERNETES)
    out = svc.artifacts.rel_of(inputs.output_uri)
    launched = []

    def pod(args):  # what the GPU pod leaves at the output location
        launched.append(list(args))
        fake_model(svc, f"{out}/model", "trained")
        publish_as_the_trainer(svc, f"{out}/model")
        svc.artifacts.write_json(f"{out}/metrics.json", {"global_step": 3, "model_uri": "x", "inputs_hash": "h"})

    with pytest.raises(InvalidInput, match="GPU pod"):
        steps.train(svc, inputs)  # outside a task nothing can start a pod

    def pod_cut_short(args):  # files and metrics there, the model's manifest never final (killed mid-upload)
        fake_model(svc, f"{out}/model", "partial")
        svc.artifacts.write_json(f"{out}/metrics.json", {"global_step": 3, "model_uri": "x", "inputs_hash": "h"})

    svc.run_trainer_pod = pod_cut_short
    with pytest.raises(RuntimeError, match="left no finished model"):
        steps.train(svc, inputs)
    svc.run_trainer_pod = pod  # what the task runtime does: a KubernetesPodOperator within the task
    trained = steps.train(svc, inputs)
    assert launched == [list(inputs.args)] and trained.skipped is False
    assert trained.model_uri == svc.artifacts.uri(f"{out}/model") and trained.metrics == {"global_step": 3,
                                                                                           "inputs_hash": "h"}
    again = steps.train(svc, inputs)
    assert again.skipped is True and len(launched) == 1

    candidate = steps.register_trained(svc, inputs, trained)
    assert candidate.model_id == f"{MODEL_NAME}:v{candidate.version}" and candidate.uri == trained.model_uri
    stored = svc.registry.get_artifact(candidate.artifact_id)
    assert stored.stage == Stage.CANDIDATE and stored.metrics["training"]["global_step"] == 3
    assert stored.params["compute"] == "kubernetes" and stored.params["train_key"] == inputs.train_key
    assert {rel for _, rel in svc.registry.parents(candidate.artifact_id)} == {Relation.TRAINED_ON,
                                                                              Relation.FINETUNED_FROM}
    assert steps.register_trained(svc, inputs, again).artifact_id == candidate.artifact_id  # same weights


def report(**ndcg_at_full: float) -> dict:
    return {"dims": [384, 128], "primary_set": "synthetic-test", "ks": [10],
            "sets": {"synthetic-test": {"queries": 4, "corpus": 8, "guard": False, "level": "chunk", "notes": []}},
            "models": {label: {"metrics": {"synthetic-test": {"384": {"ndcg@10": v}, "128": {"ndcg@10": v}}}}
                       for label, v in ndcg_at_full.items()}}


def evaluation_of(svc: Services, tag: str, rep: dict, ids: dict) -> Evaluation:
    uri = svc.artifacts.write_json(f"evaluations/{tag}/report.json", rep)
    chart = svc.artifacts.write_bytes(f"evaluations/{tag}/ndcg_by_dim.png", b"\x89PNG")
    return Evaluation(uri, chart, "synthetic-test", (384, 128), {k: f"embeddings:{k}" for k in ids}, ids,
                      {k: v["metrics"]["synthetic-test"]["384"]["ndcg@10"] for k, v in rep["models"].items()})


def test_the_gate_rejects_or_promotes_and_records_why(svc, run):
    add_dataset(svc, "d1")
    inputs = steps.resolve_inputs(svc, FinetuneParams(), run, TrainingConfig())
    base = register_base_model(svc.registry)
    live = register_candidate(svc.registry, fake_model(svc, "models/live", "live"), "1" * 64)
    promote(svc.registry, live.id, None, "the live model")
    worse = ModelRef.of(register_candidate(svc.registry, fake_model(svc, "models/worse", "w"), "2" * 64))
    ids = {"base": base.id, "live": live.id, "candidate": worse.artifact_id}
    evaluation = evaluation_of(svc, "worse", report(base=0.5, live=0.6, candidate=0.55), ids)

    decision = promotion.gate_candidate(svc, FinetuneParams(), inputs, worse, evaluation)
    assert not decision.promote and decision.verdict is Status.REJECTED and "does not beat" in decision.reasons[0]
    recorded = svc.registry.get_artifact(decision.evaluation_id)
    assert recorded.status == Status.REJECTED and recorded.params["chart_uri"] == evaluation.chart_uri
    assert {(p.id, rel) for p, rel in svc.registry.parents(recorded.id)} == {
        (worse.artifact_id, Relation.EVALUATES), (live.id, Relation.BASELINE), (inputs.dataset.artifact_id,
                                                                                Relation.EVALUATED_ON)}
    assert svc.registry.get_artifact(worse.artifact_id).status == Status.REJECTED
    refused = promotion.promote_candidate(svc, inputs, decision)
    assert not refused.promoted and refused.skip_reason.startswith("gate rejected") and refused.asset_events() == []
    assert svc.registry.in_stage(ArtifactKind.MODEL, MODEL_NAME, Stage.PRODUCTION).id == live.id

    better = ModelRef.of(register_candidate(svc.registry, fake_model(svc, "models/better", "b"), "3" * 64))
    evaluation = evaluation_of(svc, "better", report(base=0.5, live=0.6, candidate=0.7),
                               ids | {"candidate": better.artifact_id})
    decision = promotion.gate_candidate(svc, FinetuneParams(margin=0.05), inputs, better, evaluation)
    assert decision.promote and decision.delta == pytest.approx(0.1) and decision.live_model == "embeddings:live"
    promoted = promotion.promote_candidate(svc, inputs, decision)
    assert promoted.promoted and promoted.previous_artifact_id == live.id and promoted.skip_reason is None
    assert promoted.asset_events()[0][1]["model_id"] == better.model_id
    history = svc.registry.stage_history(better.artifact_id)
    assert history[-1]["reason"].startswith(f"gate approved (evaluation {decision.evaluation_id}, delta +0.1000")

    # Gating the live model itself: nothing new, and the live model's row is left alone.
    evaluation = evaluation_of(svc, "same", report(base=0.5, live=0.7, candidate=0.7),
                               ids | {"live": better.artifact_id, "candidate": better.artifact_id})
    same = promotion.gate_candidate(svc, FinetuneParams(), inputs, better, evaluation)
    assert same.same_as_live and not same.promote and "live model itself" in same.reasons[0]
    assert svc.registry.get_artifact(better.artifact_id).status == Status.APPROVED

    summary = summarize(svc, run, {"resolve_inputs": inputs.to_xcom(), "register_candidate": better.to_xcom(),
                                   "evaluate": evaluation.to_xcom(), "gate": same.to_xcom()})
    assert summary["decision"] == "rejected" and summary["noop"] is True and summary["ndcg@10"]["candidate"] == 0.7
    assert summary["candidate"]["stage"] == Stage.PRODUCTION and summary["dataset"]["id"] == inputs.dataset.artifact_id
    assert json.loads(json.dumps(summary)) == summary


def test_rollback_restores_an_earlier_production_model_with_a_reason(svc, run):
    good = register_candidate(svc.registry, fake_model(svc, "models/good", "g"), "4" * 64)
    bad = register_candidate(svc.registry, fake_model(svc, "models/bad", "b"), "5" * 64)
    promote(svc.registry, good.id, None, "gate approved")
    promote(svc.registry, bad.id, None, "gate approved")

    restored = promotion.rollback_model(svc, ModelRollbackParams(to_version=good.version), run)
    assert restored.promoted and restored.rollback and restored.previous_artifact_id == bad.id
    summary = summarize_rollback(svc, run, {"rollback": restored.to_xcom()})
    assert summary["history"][-1]["reason"] == f"rollback to v{good.version} (manual__1)"
    assert summary["previous_version"] == bad.version and summary["noop"] is False
    again = promotion.rollback_model(svc, ModelRollbackParams(to_version=good.version, reason="again"), run)
    assert not again.promoted and "already production" in again.skip_reason
    with pytest.raises(InvalidInput, match="never in production"):
        never = register_candidate(svc.registry, fake_model(svc, "models/never", "n"), "6" * 64)
        promotion.rollback_model(svc, ModelRollbackParams(to_version=never.version), run)
    assert summarize_rollback(svc, run, {})["history"][-1]["to_stage"] == Stage.PRODUCTION


PAIRS = [
    ("how does the write-ahead log protect data", "The write-ahead log records every change before it reaches the "
     "data files, so a crash can be recovered by replaying it."),
    ("what does vacuum reclaim", "VACUUM reclaims storage occupied by dead tuples left behind by updates and deletes."),
    ("when should I create a partial index", "A partial index covers only the rows that satisfy its predicate, which "
     "keeps it small when queries always filter the same way."),
    ("how are foreign keys enforced", "A foreign key constraint requires the referenced row to exist in the other "
     "table; deleting it is refused or cascades."),
    ("what isolation level avoids phantom reads", "Serializable isolation makes concurrent transactions behave as if "
     "they ran one after another, which rules out phantom reads."),
    ("how do I copy a table to a csv file", "The COPY command moves data between a table and a file, for example in "
     "CSV format with a header line."),
]


def save_pairs(svc: Services, tag: str) -> None:
    from datasets import Dataset, DatasetDict

    rows = [{"query": q, "positive": p, "negative": "", "doc_id": f"d{i}", "chunk_id": f"d{i}#0"}
            for i, (q, p) in enumerate(PAIRS)]
    local = svc.artifacts.local_path(f"datasets/{tag}")
    DatasetDict({"train": Dataset.from_list(rows[:2]), "test": Dataset.from_list(rows[2:])}).save_to_disk(str(local))
    svc.registry.record_artifact(ArtifactKind.DATASET, DATASET_NAME, tag.ljust(64, "0"), str(local),
                                 status=Status.USABLE)


def test_finetune_in_process_is_one_recorded_run(svc, base_model_path):
    """The CLI's form of the DAG: the same steps, one run. The "trained" model is the base model with
    shuffled word embeddings (what a failed training might leave), so the gate must reject it."""
    from tests.unit.training_data import save_broken_model

    from ragops.training.pipeline import finetune_in_process

    save_pairs(svc, "pairs")
    params = FinetuneParams(matryoshka_dims=[384, 64], ks=[1, 10], margin=0.0)
    scratch = RunRef("scratch", "scratch", "scratch")
    out = svc.artifacts.rel_of(steps.resolve_inputs(svc, params, scratch, TrainingConfig()).output_uri)
    save_broken_model(base_model_path, svc.artifacts.local_path(f"{out}/model"))
    publish_as_the_trainer(svc, f"{out}/model")
    svc.artifacts.write_json(f"{out}/metrics.json", {"global_step": 1, "model_uri": "x"})

    summary = finetune_in_process(svc, params, "cli__1")
    assert summary["trained"]["skipped"] is True and summary["base_model"].startswith("base:")
    assert summary["decision"] == "rejected" and summary["promoted"] is False, summary
    assert summary["ndcg@10"]["candidate"] < summary["ndcg@10"]["live"] == summary["ndcg@10"]["base"]
    run = svc.registry.get_run(summary["run_key"])
    assert run["status"] == "success" and run["summary"]["decision"] == "rejected"
    assert [f["service"] for f in run["fallbacks"]][-1] == "Kubernetes GPU pod"
    report = svc.artifacts.read_json(svc.artifacts.rel_of(summary["report_uri"]))
    assert report["dims"] == [384, 64] and report["models"]["live"]["uri"] == BASE_MODEL_URI
    assert svc.registry.in_stage(ArtifactKind.MODEL, MODEL_NAME, Stage.PRODUCTION) is None
