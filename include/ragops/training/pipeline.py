"""The steps of rag_finetune_embeddings, as plain functions (the DAG only wires them).

resolve inputs -> train (pod or local process) -> register the candidate -> evaluate base, live
and candidate with one evaluator -> gate -> promote (or record the rejection).
Every step is keyed by content hashes, so a retried or re-run step finds its own results.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ragops.hashing import hash_object, short
from ragops.models import (
    DEFAULT_MODEL_NAME,
    model_dir_hash,
    promote,
    register_base_model,
    register_candidate,
    resolve_embedding_model,
)
from ragops.training.pod import TrainingConfig, TrainingRequest, entrypoint_args

log = logging.getLogger(__name__)

DATASET_KIND = "dataset"
DATASET_NAME = "synthetic-queries"
MODEL_CACHE = Path(tempfile.gettempdir()) / "ragops-models"


def _dataset_artifact(registry: Any, version: int | None) -> Any:
    if version:
        art = registry.find_artifact(DATASET_KIND, DATASET_NAME, version=int(version))
        if art is None:
            raise ValueError(f"param dataset_version={version}: no version {version} of dataset {DATASET_NAME!r}")
        if art.status != "usable":
            raise ValueError(f"param dataset_version={version}: dataset {DATASET_NAME!r} v{version} is {art.status!r},"
                             " not usable")
        return art
    usable = registry.list_artifacts(DATASET_KIND, DATASET_NAME, status="usable")
    if not usable:
        raise ValueError(f"no usable {DATASET_NAME!r} dataset in the lineage registry: run rag_synthetic_data first")
    return usable[-1]


def _base_model(registry: Any, artifacts: Any, ref: str, name: str) -> tuple[str, str, int | None, str]:
    """(URI the trainer reads, content hash, artifact id, model id) for a base model reference."""
    if ref in ("", "base"):
        art = register_base_model(registry, name)
        return art.uri, art.content_hash, art.id, f"base:{art.params.get('base_model', 'base')}"
    resolved = resolve_embedding_model(ref, registry=registry, artifacts=artifacts, cache_dir=MODEL_CACHE, name=name)
    if resolved.artifact_id is not None:
        art = registry.get_artifact(resolved.artifact_id)
        return art.uri, art.content_hash, art.id, resolved.model_id
    return resolved.path, resolved.content_hash, None, resolved.model_id


def resolve_inputs(params: Mapping[str, Any], registry: Any, artifacts: Any, config: TrainingConfig,
                   run_key: str | None = None) -> dict[str, Any]:
    """The dataset, base model, hyperparameters and output location of this run, and the trainer's arguments."""
    name = DEFAULT_MODEL_NAME
    dataset = _dataset_artifact(registry, params.get("dataset_version"))
    base_uri, base_hash, base_id, base_model_id = _base_model(registry, artifacts, str(params.get("base_model") or "base"),
                                                              name)
    dims = tuple(int(d) for d in (params.get("matryoshka_dims") or ()))
    hyper = {"epochs": float(params.get("epochs", 1)), "batch_size": int(params.get("batch_size", 32)),
             "lr": float(params.get("lr", 2e-5)), "matryoshka_dims": list(dims),
             "max_steps": int(params.get("max_steps", -1)), "seed": int(params.get("seed", 42)),
             "checkpoint_steps": int(params.get("checkpoint_steps", 100))}
    train_key = hash_object({"dataset": dataset.content_hash, "base": base_hash, **hyper})
    output_rel = f"models/{name}/runs/{short(train_key, 16)}"
    if config.compute == "kubernetes" and artifacts.is_local:
        raise ValueError("compute 'kubernetes' needs an object-storage artifact root (Variable ragops_artifact_root): "
                         f"the pod cannot read the local folder {artifacts.root_uri}")
    request = TrainingRequest(dataset_uri=dataset.uri, base_model=base_uri, output_uri=artifacts.uri(output_rel),
                              epochs=hyper["epochs"], batch_size=hyper["batch_size"], lr=hyper["lr"],
                              matryoshka_dims=dims, checkpoint_steps=hyper["checkpoint_steps"], seed=hyper["seed"],
                              max_steps=hyper["max_steps"], storage_options=dict(config.storage_options))
    return {
        "model_name": name, "compute": config.compute, "train_key": train_key, "output_rel": output_rel,
        "output_uri": request.output_uri, "args": entrypoint_args(request), "hyperparameters": hyper,
        "dataset": {"id": dataset.id, "version": dataset.version, "uri": dataset.uri, "hash": dataset.content_hash},
        "base_model": {"id": base_id, "uri": base_uri, "hash": base_hash, "model_id": base_model_id},
        "margin": float(params.get("margin", 0.005)), "guard_tolerance": float(params.get("guard_tolerance", 0.01)),
        "ks": [int(k) for k in (params.get("ks") or (10, 100))],
        "golden_queries": params.get("golden_queries") or None,
        "beir_folder": params.get("beir_folder") or None, "beir_split": params.get("beir_split") or "test",
        "beir_max_queries": params.get("beir_max_queries"), "beir_distractors": int(params.get("beir_distractors") or 0),
        "run_key": run_key,
    }


def local_model_dir(artifacts: Any, rel: str) -> Path:
    """A local folder for a model in the store (the store's own folder when local)."""
    if artifacts.is_local:
        return artifacts.local_path(rel)
    local = MODEL_CACHE / rel.replace("/", "_")
    if not (local / "config.json").exists():
        artifacts.download_dir(rel, local)
    return local


def register_trained(inputs: Mapping[str, Any], train_metrics: Mapping[str, Any], registry: Any, artifacts: Any,
                     run_key: str | None = None) -> dict[str, Any]:
    """Registers the trained model as a candidate version, linked to its dataset and base model."""
    model_rel = f"{inputs['output_rel']}/model"
    if not artifacts.exists(f"{model_rel}/config.json"):
        raise FileNotFoundError(f"the trainer left no model at {artifacts.uri(model_rel)}")
    local = local_model_dir(artifacts, model_rel)
    parents = [(inputs["dataset"]["id"], "trained_on")]
    if inputs["base_model"]["id"] is not None:
        parents.append((inputs["base_model"]["id"], "finetuned_from"))
    metrics = {k: v for k, v in train_metrics.items() if k not in ("skipped", "model_uri")}
    art = register_candidate(registry, artifacts.uri(model_rel), model_dir_hash(local), name=inputs["model_name"],
                             params={"hyperparameters": inputs["hyperparameters"], "train_key": inputs["train_key"],
                                     "dataset_version": inputs["dataset"]["version"],
                                     "base_model": inputs["base_model"]["model_id"], "compute": inputs["compute"]},
                             metrics={"training": metrics}, parents=parents, run_key=run_key)
    return {"id": art.id, "version": art.version, "hash": art.content_hash, "uri": art.uri, "stage": art.stage,
            "local_path": str(local), "model_id": f"{art.name}:v{art.version}"}


def evaluate_run(inputs: Mapping[str, Any], candidate: Mapping[str, Any], registry: Any, artifacts: Any,
                 dims: list[int] | None = None) -> dict[str, Any]:
    """Base, live and candidate through one evaluator; the report and chart are saved as artifacts."""
    from ragops.synthetic.dataset import load_dataset, rel_of_uri
    from ragops.training.evaluate import (
        beir_eval_set,
        evaluate_models,
        golden_eval_set,
        model_report,
        save_report,
    )

    dataset = load_dataset(artifacts, rel_of_uri(artifacts, inputs["dataset"]["uri"]))
    test_rows = dataset["test"].to_list()
    guards = []
    if inputs.get("golden_queries"):
        guards.append(golden_eval_set(inputs["golden_queries"], test_rows + dataset["train"].to_list()))
    if inputs.get("beir_folder"):
        guards.append(beir_eval_set(inputs["beir_folder"], inputs["beir_split"],
                                    max_queries=inputs.get("beir_max_queries"),
                                    extra_corpus=inputs.get("beir_distractors") or 0))
    base = resolve_embedding_model("base", registry=registry, artifacts=artifacts, cache_dir=MODEL_CACHE,
                                   name=inputs["model_name"])
    live = resolve_embedding_model("production", registry=registry, artifacts=artifacts, cache_dir=MODEL_CACHE,
                                   name=inputs["model_name"])
    if dims is None:
        dims = inputs["hyperparameters"]["matryoshka_dims"] or None
    if not dims:
        from ragops.embedding import Embedder

        full = Embedder(candidate["local_path"]).dimension
        dims = [full] + [d for d in (768, 512, 256, 128, 64) if d < full]
    report = evaluate_models({"base": base.path, "live": live.path, "candidate": candidate["local_path"]},
                             test_rows, dims, inputs["ks"], guard_sets=guards)
    report["model_ids"] = {"base": base.model_id, "live": live.model_id, "candidate": candidate["model_id"]}
    report["artifact_ids"] = {"base": base.artifact_id, "live": live.artifact_id, "candidate": candidate["id"]}
    uris = save_report(report, artifacts, f"evaluations/{inputs['model_name']}/{short(candidate['hash'], 16)}")
    return {**uris, "candidate": model_report(report, "candidate"), "live": model_report(report, "live"),
            "base": model_report(report, "base"), "report": report}


def gate_run(inputs: Mapping[str, Any], candidate: Mapping[str, Any], evaluation: Mapping[str, Any], registry: Any,
             run_key: str | None = None) -> dict[str, Any]:
    """Decides, and records the evaluation and the decision in lineage."""
    from ragops.training.gate import decide, record_decision

    live_id = evaluation["report"]["artifact_ids"]["live"]
    if live_id == candidate["id"]:
        from ragops.training.gate import Decision

        decision = Decision(False, ["the candidate is the live model itself (same weights): nothing to promote"],
                            {"delta": 0.0, "guards": [], "candidate": "candidate", "live": "live"})
    else:
        decision = decide(evaluation["candidate"], evaluation["live"], margin=inputs["margin"],
                          guard_tolerance=inputs["guard_tolerance"])
    record = record_decision(registry, decision, candidate_id=candidate["id"], report=evaluation["report"],
                             report_uri=evaluation["report_uri"], live_id=live_id,
                             dataset_id=inputs["dataset"]["id"], extra_uris={"chart_uri": evaluation["chart_uri"]},
                             run_key=run_key, update_candidate=live_id != candidate["id"])
    for reason in decision.reasons:
        log.info("gate: %s", reason)
    return {"promote": decision.promote, "verdict": decision.verdict, "reasons": decision.reasons,
            "evaluation_id": record.id, "delta": decision.inputs.get("delta"),
            "live_model": evaluation["report"]["model_ids"]["live"]}


def promote_run(candidate: Mapping[str, Any], decision: Mapping[str, Any], registry: Any,
                run_key: str | None = None) -> dict[str, Any]:
    reason = f"gate approved (evaluation {decision['evaluation_id']}, delta {decision['delta']:+.4f})"
    return promote(registry, candidate["id"], run_key, reason)
