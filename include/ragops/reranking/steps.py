"""rag_train_reranker's training run: resolve the inputs -> mine -> train -> register.

Each step is a plain function of the services, the params and the records before it. The
trainer's output location is keyed by the mined data and the hyperparameters, so a retried or
re-run step finds its own results: a finished model there is not trained again, and the same
model registers as the same version.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path

from ragops.errors import InvalidInput
from ragops.hashing import hash_object, short
from ragops.models import ModelRef, model_dir_hash, register_candidate
from ragops.reranking.params import RerankerParams
from ragops.reranking.records import MinedData, RerankerHyperparameters, RerankerInputs, TrainedReranker
from ragops.runs import RunRef
from ragops.services import Services
from ragops.vocabulary import (
    ARTIFACT_ROOT_VARIABLE,
    BASE_MODEL_URI,
    RERANKER_NAME,
    Compute,
    Relation,
    RerankerKind,
)

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"    # written last: its presence means "finished"


# -- 1. inputs ----------------------------------------------------------------------------------
def resolve_inputs(svc: Services, params: RerankerParams, run: RunRef) -> RerankerInputs:
    """Imports the labels (when ``labels_source`` is set), picks the dataset version, and pins the
    collection version the alias points at now (mining and evaluation both use it)."""
    from ragops.labels import import_labels
    from ragops.reranking.mining import live_path
    from ragops.training.records import DatasetRef
    from ragops.training.steps import dataset_version

    imported = None
    if params.labels_source:
        if params.dataset_version:
            raise InvalidInput("params labels_source and dataset_version exclude each other: the run trains on the "
                               "version the import makes")
        imported = import_labels(svc, params.labels_source, alias=params.alias, split=params.labels_split,
                                 merge_with=params.labels_merge, run_key=run.run_key)
        d = imported.dataset
        dataset = DatasetRef(d.dataset_id, d.version, d.uri, d.content_hash)
    else:
        dataset = dataset_version(svc, params.dataset_version)
    path = live_path(svc, params.alias)
    if path.encode is None:
        raise InvalidInput(f"collection {params.alias!r}: {path.encoder_problem}")
    kind = RerankerKind(params.kind)
    compute = svc.training_config(params.compute).compute if kind == RerankerKind.CROSS_ENCODER else Compute.LOCAL
    if compute == Compute.KUBERNETES and svc.artifacts.is_local:
        raise InvalidInput(f"compute 'kubernetes' needs an object-storage artifact root (Variable "
                           f"{ARTIFACT_ROOT_VARIABLE}): the pod cannot read the local folder {svc.artifacts.root_uri}")
    hyper = RerankerHyperparameters(
        kind=kind, mode=params.mode, top_n=params.top_n, negative_margin=params.negative_margin,
        negatives_per_query=params.negatives_per_query, max_train_queries=params.max_train_queries, trees=params.trees,
        leaves=params.leaves, ltr_learning_rate=params.ltr_learning_rate, min_data_in_leaf=params.min_data_in_leaf,
        epochs=params.epochs, batch_size=params.batch_size, lr=params.lr, max_steps=params.max_steps, seed=params.seed)
    log.info("training a %s reranker on dataset v%s over %s (%s), top %d %s", kind.value, dataset.version,
             path.collection, params.alias, params.top_n, params.mode)
    return RerankerInputs(run, dataset, params.alias, path.collection, path.version.artifact_id, hyper, compute,
                          imported)


# -- 2. mine ------------------------------------------------------------------------------------
def mine_training_data(svc: Services, inputs: RerankerInputs) -> MinedData:
    """The train split's queries through the first stage of the pinned collection version."""
    import pyarrow as pa

    from ragops.labels import label_sources_of
    from ragops.reranking.mining import live_path, mine, query_groups
    from ragops.synthetic.dataset import dataset_rows

    hyper = inputs.hyperparameters
    splits = label_sources_of(svc, inputs.dataset.artifact_id,
                              dataset_rows(svc.artifacts, svc.artifacts.rel_of(inputs.dataset.uri)))
    groups = query_groups(splits["train"], max_queries=hyper.max_train_queries, seed=hyper.seed)
    if not groups:
        raise InvalidInput(f"dataset v{inputs.dataset.version} has no training queries")
    path = live_path(svc, inputs.collection)
    mined = mine(path, groups, mode=hyper.mode.value, top_n=hyper.top_n, negative_margin=hyper.negative_margin,
                 negatives_per_query=hyper.negatives_per_query)
    if hyper.kind == RerankerKind.LTR and not mined.stats["ltr_queries"]:
        raise InvalidInput(f"no training query of dataset v{inputs.dataset.version} has its positive in the first "
                           f"stage's top {hyper.top_n}: nothing to learn a reordering from")
    content_hash = hash_object({"collection": inputs.collection, "dataset": inputs.dataset.content_hash,
                                "rows": mined.rows, "pairs": mined.pairs if hyper.kind != RerankerKind.LTR else []})
    rel = f"rerankers/mined/{short(content_hash, 16)}"
    uri = svc.artifacts.write_table(f"{rel}/candidates.parquet", pa.Table.from_pylist(mined.rows) if mined.rows
                                    else pa.table({"qid": pa.array([], pa.string())}))
    base = {}
    pairs_uri, args = None, ()
    if hyper.kind == RerankerKind.CROSS_ENCODER:
        base = {"base_model": BASE_MODEL_URI}
        pairs_uri = _save_pairs(svc, f"{rel}/pairs", mined.pairs)
    train_key = hash_object({"mined": content_hash, "hyperparameters": hyper.to_xcom(), **base})
    output_uri = svc.artifacts.uri(f"models/{RERANKER_NAME}/runs/{short(train_key, 16)}")
    if pairs_uri is not None:
        args = tuple(entrypoint_args(pairs_uri, output_uri, hyper))
    s = mined.stats
    return MinedData(uri, content_hash, s["ltr_queries"] if hyper.kind == RerankerKind.LTR else s["queries"],
                     s["missed"], s["positives"], s["negatives"], s["false_negatives"], s["same_document"], train_key,
                     output_uri, pairs_uri, args)


def _save_pairs(svc: Services, rel: str, pairs: list[dict]) -> str:
    from datasets import Dataset, DatasetDict

    if not svc.artifacts.dir_complete(rel):
        with tempfile.TemporaryDirectory(prefix="ragops-pairs-") as tmp:
            DatasetDict({"train": Dataset.from_list(pairs)}).save_to_disk(str(Path(tmp) / "ds"))
            svc.artifacts.upload_dir(Path(tmp) / "ds", rel)
    return svc.artifacts.uri(rel)


def entrypoint_args(pairs_uri: str, output_uri: str, hyper: RerankerHyperparameters) -> list[str]:
    """train_cross_encoder.py's arguments: identical for the pod and the local process."""
    return ["--pairs-uri", pairs_uri, "--base-model", BASE_MODEL_URI, "--output-uri", output_uri,
            "--epochs", repr(float(hyper.epochs)), "--batch-size", str(int(hyper.batch_size)),
            "--lr", repr(float(hyper.lr)), "--max-steps", str(int(hyper.max_steps)), "--seed", str(int(hyper.seed))]


# -- 3. train -----------------------------------------------------------------------------------
def finished(svc: Services, output_uri: str, *, skipped: bool) -> TrainedReranker | None:
    rel = svc.artifacts.rel_of(output_uri)
    # a model folder published whole (manifest final), by this task (LTR) or by the trainer
    if not (svc.artifacts.exists(f"{rel}/{METRICS_FILE}") and svc.artifacts.dir_complete(f"{rel}/model")):
        return None
    metrics = svc.artifacts.read_json(f"{rel}/{METRICS_FILE}")
    return TrainedReranker(svc.artifacts.uri(f"{rel}/model"), skipped,
                           {k: v for k, v in metrics.items() if k not in ("skipped", "model_uri")})


def train(svc: Services, inputs: RerankerInputs, mined: MinedData) -> TrainedReranker:
    """LTR: LambdaRank in this task (seconds). Cross-encoder: train_cross_encoder.py in a local
    process or a GPU pod, the same arguments either way. Nothing is trained when the output
    location (keyed by the mined data and hyperparameters) already holds a finished model."""
    done = finished(svc, mined.output_uri, skipped=True)
    if done is not None:
        log.info("already trained at %s", mined.output_uri)
        return done
    if inputs.hyperparameters.kind == RerankerKind.LTR:
        _train_ltr(svc, inputs.hyperparameters, mined)
    elif inputs.compute == Compute.LOCAL:
        run_local(list(mined.args))
    else:
        from ragops.reranking.registry import RERANKER_TRAINER

        svc.run_trainer_pod(list(mined.args), RERANKER_TRAINER)
    trained = finished(svc, mined.output_uri, skipped=False)
    if trained is None:
        raise RuntimeError(f"the trainer finished but left no model at {mined.output_uri}")
    log.info("trained: %s", trained.metrics)
    return trained


def _train_ltr(svc: Services, hyper: RerankerHyperparameters, mined: MinedData) -> None:
    import time

    from ragops.reranking.ltr import LTRConfig, LTRReranker, train_ltr
    from ragops.reranking.mining import ltr_groups

    rows = svc.artifacts.read_table(svc.artifacts.rel_of(mined.uri)).to_pylist()
    features, labels, groups = ltr_groups(rows)
    if not groups:
        raise InvalidInput("no mined query has both a positive and a negative candidate: nothing to rank")
    config = LTRConfig(trees=hyper.trees, leaves=hyper.leaves, learning_rate=hyper.ltr_learning_rate,
                       min_data_in_leaf=hyper.min_data_in_leaf, seed=hyper.seed)
    started = time.perf_counter()
    booster = train_ltr(features, labels, groups, config)
    runtime = time.perf_counter() - started
    rel = svc.artifacts.rel_of(mined.output_uri)
    with tempfile.TemporaryDirectory(prefix="ragops-ltr-") as tmp:
        LTRReranker(booster).save(Path(tmp) / "model")
        svc.artifacts.upload_dir(Path(tmp) / "model", f"{rel}/model")
    importance = dict(zip(booster.feature_name(), (float(v) for v in booster.feature_importance("gain")), strict=True))
    svc.artifacts.write_json(f"{rel}/{METRICS_FILE}", {
        "kind": RerankerKind.LTR.value, "queries": len(groups), "rows": len(labels), "positives": int(sum(labels)),
        "trees": booster.num_trees(), "runtime_s": round(runtime, 3), "device": "cpu",
        "feature_gain": {k: round(v, 3) for k, v in sorted(importance.items(), key=lambda kv: -kv[1])}})


def run_local(args: list[str], *, timeout_s: float | None = None) -> None:
    """train_cross_encoder.py in a child process, its output streamed to the log."""
    from ragops.reranking.registry import TRAINER_ENTRYPOINT

    cmd = [sys.executable, str(TRAINER_ENTRYPOINT), *args]
    log.info("training locally: %s", " ".join(cmd[1:]))
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip())
            log.info("[trainer] %s", line.rstrip())
        code = proc.wait(timeout=timeout_s)
    if code != 0:
        raise RuntimeError(f"train_cross_encoder.py exited with {code}; last lines:\n" + "\n".join(tail))


# -- 4. register the candidate ------------------------------------------------------------------
def register_trained(svc: Services, inputs: RerankerInputs, mined: MinedData, trained: TrainedReranker) -> ModelRef:
    """Registers the trained reranker as a candidate version of ``reranker``, linked to its dataset
    and the collection version it was mined from."""
    rel = svc.artifacts.rel_of(trained.model_uri)
    if not svc.artifacts.exists(f"{rel}/reranker.json"):
        raise FileNotFoundError(f"the trainer left no reranker at {trained.model_uri}")
    if svc.artifacts.is_local:
        content_hash = model_dir_hash(svc.artifacts.local_path(rel))
    else:
        Path(svc.model_cache).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=svc.model_cache, prefix=".hashing-") as scratch:
            content_hash = model_dir_hash(svc.artifacts.download_dir(rel, Path(scratch) / "model"))
    parents = [(inputs.dataset.artifact_id, Relation.TRAINED_ON)]
    if inputs.collection_id is not None:
        parents.append((inputs.collection_id, Relation.MINED_FROM))
    art = register_candidate(
        svc.registry, trained.model_uri, content_hash, name=inputs.model_name,
        params={"kind": inputs.hyperparameters.kind.value, "hyperparameters": inputs.hyperparameters.to_xcom(),
                "train_key": mined.train_key, "dataset_version": inputs.dataset.version,
                "collection": inputs.collection, "compute": inputs.compute.value},
        metrics={"training": trained.metrics, "mined": {"queries": mined.queries, "missed": mined.missed,
                                                        "positives": mined.positives, "negatives": mined.negatives,
                                                        "false_negatives": mined.false_negatives}},
        parents=parents, run_key=inputs.run_key)
    log.info("candidate %s:v%s registered (stage %s)", art.name, art.version, art.stage)
    return ModelRef.of(art)
