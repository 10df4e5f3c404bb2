"""rag_finetune_llm's training steps: resolve the inputs -> train a LoRA adapter -> merge the adapters.

The trainer's location in the store is keyed by its inputs (instruction dataset, base model,
hyperparameters): ``models/llm/runs/<key>`` is the checkpoint mirror (``--checkpoint-uri``), so a
retried task or a restarted pod resumes from the newest complete checkpoint there, and a finished run
(metrics.json, written last, naming the same inputs) is not trained again. The merged model is keyed
the same way by its inputs (base, adapters, weights, method), so a retry merges nothing twice and
registers the same version.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from ragops.artifacts import fsspec_uri
from ragops.errors import InvalidInput
from ragops.hashing import hash_object, short
from ragops.llm.compute import LLM_TRAINER, WORK_DIR, run_local
from ragops.llm.models import adapter_version, resolve_llm, weights_hash
from ragops.llm.params import LLMFinetuneParams
from ragops.llm.records import InstructionDataset, LLMHyperparameters, LLMTrainingInputs, MergedModel, TrainedAdapter
from ragops.models import ModelRef, register_candidate
from ragops.runs import RunRef
from ragops.services import Services
from ragops.training.compute import trainer_env
from ragops.vocabulary import ARTIFACT_ROOT_VARIABLE, LLM_MODEL_NAME, ArtifactKind, Compute, Relation, Status

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"   # train_llm.py writes it last (locally, then to the mirror): "finished"


# -- 1. inputs ----------------------------------------------------------------------------------
def hyperparameters(params: LLMFinetuneParams) -> LLMHyperparameters:
    return LLMHyperparameters(
        lora_r=int(params.lora_r), lora_alpha=float(params.lora_alpha), lora_dropout=float(params.lora_dropout),
        target_modules=tuple(params.target_modules), load_in_4bit=bool(params.load_in_4bit),
        max_steps=int(params.max_steps), lr=float(params.lr), max_seq_length=int(params.max_seq_length),
        batch_size=int(params.batch_size), grad_accum=int(params.grad_accum), save_steps=int(params.save_steps),
        seed=int(params.seed))


def scratch_dir(output_uri: str) -> str:
    """The trainer's scratch folder for a run, the same in a pod and on a worker (one per store location)."""
    return f"{WORK_DIR}/{short(hash_object(output_uri), 16)}"


def trainer_args(inputs_uri: dict[str, str], hyper: LLMHyperparameters, *, output_dir: str) -> list[str]:
    """train_llm.py's command line, checked against its parser (``train_llm.cli_args``). Storage options
    never travel here: the trainer reads them from its environment (``training.compute.trainer_env``)."""
    from ragops.training.train_llm import cli_args

    return cli_args(
        base_model=inputs_uri["base_model"], dataset=inputs_uri["dataset"], split="train", output_dir=output_dir,
        checkpoint_uri=inputs_uri["checkpoint"], max_steps=hyper.max_steps, lr=hyper.lr,
        max_seq_length=hyper.max_seq_length, batch_size=hyper.batch_size, grad_accum=hyper.grad_accum,
        lora_r=hyper.lora_r, lora_alpha=hyper.lora_alpha, lora_dropout=hyper.lora_dropout,
        target_modules=",".join(hyper.target_modules), load_in_4bit=hyper.load_in_4bit, save_steps=hyper.save_steps,
        seed=hyper.seed)


def resolve_inputs(svc: Services, params: LLMFinetuneParams, run: RunRef,
                   dataset: InstructionDataset) -> LLMTrainingInputs:
    """The base LLM, hyperparameters, the content-addressed output location and the trainer's arguments."""
    config = svc.training_config(params.compute)
    if config.compute == Compute.KUBERNETES and svc.artifacts.is_local:
        raise InvalidInput(f"compute 'kubernetes' needs an object-storage artifact root (Variable "
                           f"{ARTIFACT_ROOT_VARIABLE}): the pod cannot read the local folder {svc.artifacts.root_uri}")
    if params.load_in_4bit and config.compute == Compute.LOCAL and not _cuda():
        raise InvalidInput("param load_in_4bit (QLoRA) needs a CUDA GPU: run it with compute 'kubernetes' (the GPU "
                           "pod), or train without it")
    base = resolve_llm(svc, params.base_model, run_key=run.run_key)
    hyper = hyperparameters(params)
    train_key = hash_object({"dataset": dataset.content_hash, "base": base.content_hash, **hyper.to_xcom()})
    output_uri = svc.artifacts.uri(f"models/{LLM_MODEL_NAME}/runs/{short(train_key, 16)}")
    if config.compute == Compute.KUBERNETES and base.model_id.startswith("path:"):
        raise InvalidInput(f"param base_model={params.base_model!r} is a folder of this machine; the GPU pod "
                           "reads models from the artifact store: give the model's URI there (or a v<N>)")
    # Where the base and the data are, never a worker's cache: the trainer reads a store URI itself.
    # The trainer reads plain fsspec URIs (no Airflow connection names in them).
    args = trainer_args({"base_model": fsspec_uri(base.uri), "dataset": fsspec_uri(dataset.uri),
                         "checkpoint": fsspec_uri(output_uri)}, hyper,
                        output_dir=scratch_dir(output_uri))
    log.info("training the LLM %s from %s on %s v%s -> %s", config.compute.value, base.model_id, dataset.uri,
             dataset.version, output_uri)
    return LLMTrainingInputs(run, dataset, base, hyper, train_key, output_uri, config.compute, tuple(args))


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


# -- 2. train -----------------------------------------------------------------------------------
def _finished(svc: Services, inputs: LLMTrainingInputs) -> dict | None:
    rel = svc.artifacts.rel_of(inputs.output_uri)
    if not (svc.artifacts.exists(f"{rel}/{METRICS_FILE}")
            and svc.artifacts.exists(f"{rel}/adapter/adapter_config.json")):
        return None
    return svc.artifacts.read_json(f"{rel}/{METRICS_FILE}")


def train(svc: Services, inputs: LLMTrainingInputs) -> TrainedAdapter:
    """Runs train_llm.py in a local process or the GPU pod (the same arguments), unless
    the mirror already holds a finished run; then registers the adapter. A retry resumes from the
    mirror's newest complete checkpoint."""
    metrics = _finished(svc, inputs)
    skipped = metrics is not None
    if skipped:
        log.info("already trained at %s: no pod, no process", inputs.output_uri)
    elif inputs.compute == Compute.LOCAL:
        output_dir = Path(inputs.args[inputs.args.index("--output-dir") + 1])
        if (output_dir / METRICS_FILE).exists():  # finished here, but killed before the mirror had it: finish again
            os.remove(output_dir / METRICS_FILE)
        mirror = svc.artifacts.local_path(svc.artifacts.rel_of(inputs.output_uri)) if svc.artifacts.is_local else None
        run_local(inputs.args, mirror_dir=mirror, env=trainer_env(svc.training_config(inputs.compute.value),
                                                                  svc.storage_options_for(inputs.output_uri)),
                  logger=log)
    else:
        svc.run_trainer_pod(list(inputs.args), LLM_TRAINER)
    metrics = metrics or _finished(svc, inputs)
    if metrics is None:
        raise RuntimeError(f"the trainer exited but left no finished adapter at {inputs.output_uri}")
    metrics = {k: v for k, v in metrics.items() if k not in ("adapter_dir", "skipped")}
    adapter = register_adapter(svc, inputs, metrics)
    log.info("adapter %s: %s", adapter.model_id, {k: metrics.get(k) for k in
                                                  ("global_step", "resumed_from_step", "train_loss", "device")})
    return TrainedAdapter(adapter, skipped, metrics)


def register_adapter(svc: Services, inputs: LLMTrainingInputs, metrics: dict) -> ModelRef:
    rel = f"{svc.artifacts.rel_of(inputs.output_uri)}/adapter"
    parents = [(inputs.dataset.dataset_id, Relation.TRAINED_ON)]
    if inputs.base_model.artifact_id is not None:
        parents.append((inputs.base_model.artifact_id, Relation.FINETUNED_FROM))
    art = svc.registry.record_artifact(
        ArtifactKind.ADAPTER, LLM_MODEL_NAME, weights_hash(svc, rel), svc.artifacts.uri(rel),
        params={"hyperparameters": inputs.hyperparameters.to_xcom(), "train_key": inputs.train_key,
                "dataset_version": inputs.dataset.version, "base_model": inputs.base_model.model_id,
                "base_hash": inputs.base_model.content_hash, "compute": inputs.compute.value},
        metrics={"training": metrics}, status=Status.USABLE, run_key=inputs.run_key, parents=parents)
    return ModelRef.of(art, f"{LLM_MODEL_NAME}-adapter:v{art.version}")


# -- 3. merge -----------------------------------------------------------------------------------
def merge(svc: Services, params: LLMFinetuneParams, inputs: LLMTrainingInputs, trained: TrainedAdapter) -> MergedModel:
    """This run's adapter merged into the base (alone, weight 1: ``merge_and_unload``), or combined with
    the earlier adapters of ``merge_adapters`` by weight first (``combination_type``, default ``cat``:
    the exact weighted sum of the updates). The merged model is a candidate version of ``llm`` with
    lineage to every adapter and to the base."""
    from ragops.training.merge_adapters import merge_adapters

    adapters = [trained.adapter, *(adapter_version(svc, v) for v, _ in params.adapters_to_merge)]
    weights = [float(params.adapter_weight), *(w for _, w in params.adapters_to_merge)]
    single = len(adapters) == 1 and weights[0] == 1.0
    method = "merge_and_unload" if single else params.combination_type
    for extra in adapters[1:]:
        art = svc.registry.get_artifact(extra.artifact_id) if extra.artifact_id else None
        base_hash = art.params.get("base_hash") if art else None
        if base_hash and base_hash != inputs.base_model.content_hash:
            raise InvalidInput(f"param merge_adapters: {extra.model_id} was trained on another base than "
                               f"{inputs.base_model.model_id}; adapters merge only into their own base")
    merge_key = hash_object({"base": inputs.base_model.content_hash, "adapters": [a.content_hash for a in adapters],
                             "weights": weights, "method": method})
    rel = f"models/{LLM_MODEL_NAME}/merged/{short(merge_key, 16)}"
    skipped = svc.artifacts.dir_complete(rel)
    if not skipped:
        Path(svc.model_cache).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=svc.model_cache, prefix=".merging-") as scratch:
            manifest = merge_adapters(svc.model_path(inputs.base_model), [svc.model_path(a) for a in adapters],
                                      Path(scratch) / "merged", weights=weights,
                                      combination_type=params.combination_type)
            log.info("merged %s into %s (%s) in %.1f s", [a.model_id for a in adapters], inputs.base_model.model_id,
                     manifest["method"], manifest["seconds"])
            svc.artifacts.upload_dir(Path(scratch) / "merged", rel)
            shutil.rmtree(Path(scratch) / "merged", ignore_errors=True)
    uri = svc.artifacts.uri(rel)
    parents = [(a.artifact_id, Relation.MERGED_FROM) for a in adapters if a.artifact_id is not None]
    parents.append((inputs.dataset.dataset_id, Relation.TRAINED_ON))
    if inputs.base_model.artifact_id is not None:
        parents.append((inputs.base_model.artifact_id, Relation.FINETUNED_FROM))
    art = register_candidate(
        svc.registry, uri, weights_hash(svc, rel), name=LLM_MODEL_NAME,
        params={"role": "merged", "base_model": inputs.base_model.model_id, "merge_key": merge_key, "method": method,
                "adapters": [{"model_id": a.model_id, "artifact_id": a.artifact_id, "weight": w}
                             for a, w in zip(adapters, weights)],
                "hyperparameters": inputs.hyperparameters.to_xcom(), "dataset_version": inputs.dataset.version,
                "compute": inputs.compute.value},
        metrics={"training": trained.metrics}, parents=parents, run_key=inputs.run_key)
    log.info("candidate %s:v%s registered (stage %s)", art.name, art.version, art.stage)
    return MergedModel(ModelRef.of(art), tuple(adapters), tuple(weights), method, skipped)
