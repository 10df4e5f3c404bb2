"""rag_finetune_embeddings' training run: resolve the inputs -> train (pod or local process) -> register.

Each step is a plain function of the services, the params and the records before it. The
trainer's output location is keyed by its inputs (dataset, base model, hyperparameters), so a
retried or re-run step finds its own results: a finished model there is not trained again, and
the same weights register as the same model version.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from ragops.artifacts import fsspec_uri
from ragops.errors import InvalidInput
from ragops.hashing import hash_object, short
from ragops.models import ModelRef, model_dir_hash, register_candidate, resolve_embedding_model
from ragops.runs import RunRef
from ragops.services import Services
from ragops.training.compute import TrainingConfig, TrainingRequest, entrypoint_args, run_local, trainer_env
from ragops.training.params import FinetuneParams
from ragops.training.records import DatasetRef, Hyperparameters, TrainedModel, TrainingInputs
from ragops.vocabulary import ARTIFACT_ROOT_VARIABLE, DATASET_NAME, MODEL_NAME, ArtifactKind, Compute, Relation, Status

log = logging.getLogger(__name__)

# Runs train_embeddings.py with these arguments in a GPU pod (the orchestration side provides it).
METRICS_FILE = "metrics.json"   # the trainer writes it last: its presence means "finished"


# -- 1. inputs ----------------------------------------------------------------------------------
def dataset_version(svc: Services, version: int | None) -> DatasetRef:
    """The requested version of the training dataset, or the latest usable one."""
    if version:
        art = svc.registry.find_artifact(ArtifactKind.DATASET, DATASET_NAME, version=int(version))
        if art is None:
            raise InvalidInput(f"param dataset_version={version}: no version {version} of dataset {DATASET_NAME!r}")
        if art.status != Status.USABLE:
            raise InvalidInput(f"param dataset_version={version}: dataset {DATASET_NAME!r} v{version} is "
                               f"{art.status!r}, not usable")
    else:
        usable = svc.registry.list_artifacts(ArtifactKind.DATASET, DATASET_NAME, status=Status.USABLE)
        if not usable:
            raise InvalidInput(f"no usable {DATASET_NAME!r} dataset in the lineage registry: run rag_synthetic_data "
                               "first")
        art = usable[-1]
    return DatasetRef(art.id, art.version, art.uri, art.content_hash)


def resolve_inputs(svc: Services, params: FinetuneParams, run: RunRef,
                   config: TrainingConfig | None = None) -> TrainingInputs:
    """The dataset, base model, hyperparameters and output location of this run, and the trainer's
    arguments. ``config``: where training runs (default: the services' training configuration)."""
    config = config or svc.training_config(params.compute)
    # Params read only inside the allowed roots (issue 9, defect 6); the evaluation reads the same params.
    svc.allowed_model("base_model", params.base_model or "base")
    for name in ("golden_queries", "beir_folder"):
        if getattr(params, name):
            svc.allowed_path(name, getattr(params, name))
    dataset = dataset_version(svc, params.dataset_version)
    base = resolve_embedding_model(params.base_model or "base", svc.registry, name=MODEL_NAME)
    hyper = Hyperparameters(epochs=float(params.epochs), batch_size=int(params.batch_size), lr=float(params.lr),
                            matryoshka_dims=tuple(int(d) for d in params.matryoshka_dims),
                            max_steps=int(params.max_steps), seed=int(params.seed),
                            checkpoint_steps=int(params.checkpoint_steps))
    train_key = hash_object({"dataset": dataset.content_hash, "base": base.content_hash, **hyper.to_xcom()})
    if config.compute == Compute.KUBERNETES and svc.artifacts.is_local:
        raise InvalidInput(f"compute 'kubernetes' needs an object-storage artifact root (Variable "
                           f"{ARTIFACT_ROOT_VARIABLE}): the pod cannot read the local folder {svc.artifacts.root_uri}")
    output_uri = svc.artifacts.uri(f"models/{MODEL_NAME}/runs/{short(train_key, 16)}")
    # The trainer reads plain fsspec URIs (no Airflow connection names in them).
    request = TrainingRequest(dataset_uri=fsspec_uri(dataset.uri), base_model=fsspec_uri(base.uri),
                              output_uri=fsspec_uri(output_uri),
                              epochs=hyper.epochs, batch_size=hyper.batch_size, lr=hyper.lr,
                              matryoshka_dims=hyper.matryoshka_dims, checkpoint_steps=hyper.checkpoint_steps,
                              seed=hyper.seed, max_steps=hyper.max_steps)
    log.info("training %s from %s on dataset v%s (%s) -> %s", config.compute.value, base.model_id, dataset.version,
             dataset.uri, output_uri)
    return TrainingInputs(run, dataset, base, hyper, train_key, output_uri, config.compute,
                          tuple(entrypoint_args(request)))


# -- 2. train -----------------------------------------------------------------------------------
def finished_model(svc: Services, inputs: TrainingInputs, *, skipped: bool) -> TrainedModel | None:
    """The trainer's finished output at this run's output location, if it is there: its metrics and
    a model folder published whole (its manifest final, every file there), not merely begun."""
    rel = svc.artifacts.rel_of(inputs.output_uri)
    if not (svc.artifacts.exists(f"{rel}/{METRICS_FILE}") and svc.artifacts.dir_complete(f"{rel}/model")):
        return None
    metrics = svc.artifacts.read_json(f"{rel}/{METRICS_FILE}")
    return TrainedModel(svc.artifacts.uri(f"{rel}/model"), skipped,
                        {k: v for k, v in metrics.items() if k not in ("skipped", "model_uri")})


def train(svc: Services, inputs: TrainingInputs) -> TrainedModel:
    """Runs the trainer, in a local process or a GPU pod with the same arguments, unless its output
    location (keyed by the inputs) already holds a finished model. A retry resumes from the last
    checkpoint."""
    done = finished_model(svc, inputs, skipped=True)
    if done is not None:
        log.info("already trained at %s: no pod, no process", inputs.output_uri)
        return done
    if inputs.compute == Compute.LOCAL:
        # Storage options go in the child's environment, never its arguments (issue 9, defect 7).
        run_local(inputs.args, env=trainer_env(svc.training_config(inputs.compute.value),
                                               svc.storage_options_for(inputs.output_uri)), logger=log)
    else:
        svc.run_trainer_pod(list(inputs.args))
    trained = finished_model(svc, inputs, skipped=False)
    if trained is None:
        raise RuntimeError(f"the trainer exited but left no finished model at {inputs.output_uri}")
    log.info("trained: %s", trained.metrics)
    return trained


# -- 3. register the candidate ------------------------------------------------------------------
def _weights_hash(svc: Services, rel: str) -> str:
    """The model folder's content hash; a remote model is fetched into a scratch folder of this
    worker's cache for it, and the folder goes afterwards."""
    if svc.artifacts.is_local:
        return model_dir_hash(svc.artifacts.local_path(rel))
    Path(svc.model_cache).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=svc.model_cache, prefix=".hashing-") as scratch:
        return model_dir_hash(svc.artifacts.download_dir(rel, Path(scratch) / "model"))


def register_trained(svc: Services, inputs: TrainingInputs, trained: TrainedModel) -> ModelRef:
    """Registers the trained model as a candidate version, linked to its dataset and base model."""
    rel = svc.artifacts.rel_of(trained.model_uri)
    if not svc.artifacts.exists(f"{rel}/config.json"):
        raise FileNotFoundError(f"the trainer left no model at {trained.model_uri}")
    parents = [(inputs.dataset.artifact_id, Relation.TRAINED_ON)]
    if inputs.base_model.artifact_id is not None:
        parents.append((inputs.base_model.artifact_id, Relation.FINETUNED_FROM))
    art = register_candidate(
        svc.registry, trained.model_uri, _weights_hash(svc, rel), name=inputs.model_name,
        params={"hyperparameters": inputs.hyperparameters.to_xcom(), "train_key": inputs.train_key,
                "dataset_version": inputs.dataset.version, "base_model": inputs.base_model.model_id,
                "compute": inputs.compute.value},
        metrics={"training": trained.metrics}, parents=parents, run_key=inputs.run_key)
    log.info("candidate %s:v%s registered (stage %s)", art.name, art.version, art.stage)
    return ModelRef.of(art)
