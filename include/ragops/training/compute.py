"""Where the training entrypoint runs: a GPU pod, or a local process. Configuration, not code.

Both runners take the argument list of ``entrypoint_args`` (the one function that builds it), so a
run behaves the same on a laptop and on a GPU node. The Airflow Variable ``ragops_training``
(JSON, read by ``ragops.orchestration.pod``) chooses and configures; every key is optional::

    {
      "compute": "local",                       # or "kubernetes"
      "image": "registry.example.com/ragops-trainer:0.1.0",   # built from docker/Dockerfile.trainer
      "llm_image": "registry.example.com/ragops-llm-trainer:0.1.0",   # docker/Dockerfile.llm-trainer (rag_finetune_llm)
      "namespace": "ragops", "kubernetes_conn_id": "kubernetes_default",
      "service_account": "ragops-trainer",
      "gpus": 1, "cpu": "4", "memory": "24Gi",
      "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
      "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
      "secret_env": [{"env": "AWS_SECRET_ACCESS_KEY", "secret": "ragops-object-storage", "key": "secret-access-key"}],
      "secret_env_from": ["ragops-object-storage"],
      "env": {"AWS_DEFAULT_REGION": "eu-west-1"},
      "storage_options": {"client_kwargs": {"endpoint_url": "https://minio.example.com"}},
      "startup_timeout_seconds": 900
    }

Secrets reach the pod only as references to Kubernetes Secrets (``secretKeyRef`` / ``envFrom``);
plain ``env`` values that look like secrets are refused (``config.redact``: known secret names such as
``OPENAI_KEY``, ``*_TOKEN``, ``account_key``, and secret-shaped values). Storage options (fsspec's)
never travel as arguments, in logs or in XCom: the trainers read them from the environment variable
``RAGOPS_STORAGE_OPTIONS`` (JSON). A local process gets them in its environment (``trainer_env``);
a pod gets them as plain env only when they hold no credential, else from a Kubernetes Secret:
``"secret_env": [{"env": "RAGOPS_STORAGE_OPTIONS", "secret": "ragops-storage", "key": "options.json"}]``. The pod reads and writes artifacts through
object storage URIs (the artifact root must be remote for ``kubernetes``).

This module knows no Airflow: ``pod_spec`` describes the pod as plain data, and
``ragops.orchestration.pod`` turns it into a KubernetesPodOperator.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragops.config import redact
from ragops.errors import InvalidInput
from ragops.vocabulary import LEARNING_RATE, TRAINING_VARIABLE, Compute

log = logging.getLogger(__name__)

# The trainers' fsspec storage options (JSON), read from the environment only: never an argument.
STORAGE_OPTIONS_ENV = "RAGOPS_STORAGE_OPTIONS"

ENTRYPOINT = Path(__file__).with_name("train_embeddings.py")
# Where docker/Dockerfile.trainer puts the same file.
ENTRYPOINT_IN_IMAGE = "/opt/ragops/train_embeddings.py"
DEFAULT_IMAGE = "ragops-trainer:latest"
DEFAULT_LLM_IMAGE = "ragops-llm-trainer:latest"   # built from docker/Dockerfile.llm-trainer


@dataclass(frozen=True)
class PodTrainer:
    """Which entrypoint a training pod runs, and which ``TrainingConfig`` field names its image."""

    component: str                   # the pod's name (ragops-<component>) and its component label
    entrypoint_in_image: str
    image_field: str = "image"


EMBEDDINGS_TRAINER = PodTrainer("train-embeddings", ENTRYPOINT_IN_IMAGE)


@dataclass(frozen=True)
class TrainingRequest:
    """The entrypoint's inputs; URIs must be readable where the trainer runs."""

    dataset_uri: str
    base_model: str
    output_uri: str
    epochs: float = 1.0
    batch_size: int = 32
    lr: float = LEARNING_RATE
    matryoshka_dims: tuple[int, ...] = ()
    checkpoint_steps: int = 100
    seed: int = 42
    max_steps: int = -1
    loss: str = "auto"
    # No storage options here: they reach the trainer through its environment (``trainer_env``).


def entrypoint_args(req: TrainingRequest) -> list[str]:
    """The argument list of train_embeddings.py: identical for the pod and the local process."""
    args = [
        "--dataset-uri", req.dataset_uri,
        "--base-model", req.base_model,
        "--output-uri", req.output_uri,
        "--epochs", _num(req.epochs),
        "--batch-size", str(int(req.batch_size)),
        "--lr", _num(req.lr),
        "--checkpoint-steps", str(int(req.checkpoint_steps)),
        "--seed", str(int(req.seed)),
        "--max-steps", str(int(req.max_steps)),
        "--loss", req.loss,
    ]
    if req.matryoshka_dims:
        args += ["--matryoshka-dims", ",".join(str(int(d)) for d in req.matryoshka_dims)]
    return args


def trainer_env(config: TrainingConfig, from_connection: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The environment that carries the storage options to a trainer (never its arguments): the
    configured ones over those derived from the artifact root's connection (a local child only)."""
    options = {**dict(from_connection or {}), **dict(config.storage_options)}
    if not options:
        return {}
    return {STORAGE_OPTIONS_ENV: json.dumps(options, sort_keys=True)}


def _num(value: float) -> str:
    return repr(float(value))  # exact round trip through argparse's float()


@dataclass(frozen=True)
class TrainingConfig:
    compute: Compute = Compute.LOCAL
    image: str = DEFAULT_IMAGE
    llm_image: str = DEFAULT_LLM_IMAGE   # the LLM trainer's image (rag_finetune_llm)
    namespace: str = "default"
    kubernetes_conn_id: str = "kubernetes_default"
    service_account: str | None = None
    gpus: int = 1
    cpu: str = "4"
    memory: str = "24Gi"
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    secret_env: Sequence[Mapping[str, str]] = ()
    secret_env_from: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)   # may hold credentials
    startup_timeout_seconds: int = 900

    @classmethod
    def from_value(cls, value: str | Mapping[str, Any] | None, *,
                   compute_override: str | None = None) -> TrainingConfig:
        """From the Variable's JSON (or a dict); errors name the Variable and the key."""
        if value in (None, ""):
            data: dict[str, Any] = {}
        elif isinstance(value, str):
            try:
                data = json.loads(value)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"Variable {TRAINING_VARIABLE!r} is not valid JSON: {exc}") from exc
        else:
            data = dict(value)
        if not isinstance(data, dict):
            raise InvalidInput(f"Variable {TRAINING_VARIABLE!r} must be a JSON object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidInput(f"Variable {TRAINING_VARIABLE!r}: unknown keys {sorted(unknown)}")
        if compute_override:
            data["compute"] = compute_override
        compute = data.get("compute", Compute.LOCAL)
        if compute not in [c.value for c in Compute]:
            raise InvalidInput(f"Variable {TRAINING_VARIABLE!r}: compute {compute!r} is not one of "
                               f"{[c.value for c in Compute]}")
        config = cls(**{**data, "compute": Compute(compute)})
        config.validate()
        return config

    def validate(self) -> None:
        if int(self.gpus) < 0:
            raise InvalidInput(f"Variable {TRAINING_VARIABLE!r}: gpus must be >= 0")
        masked = redact(dict(self.env))
        leaked = sorted(k for k in self.env if masked[k] == "***" or masked[k] != self.env[k])
        if leaked:
            raise InvalidInput(f"Variable {TRAINING_VARIABLE!r}: env {leaked} look like secrets; reference a "
                               "Kubernetes Secret through secret_env or secret_env_from instead")
        for item in self.secret_env:
            if not {"env", "secret", "key"} <= set(item):
                raise InvalidInput(f"Variable {TRAINING_VARIABLE!r}: each secret_env entry needs env, secret and "
                                   f"key: {item}")
        if not isinstance(self.storage_options, Mapping):
            raise InvalidInput(f"Variable {TRAINING_VARIABLE!r}: storage_options must be a JSON object")
        if self.compute == Compute.KUBERNETES:
            # A pod would get them as plain env: credentials must come from a Kubernetes Secret instead.
            if self.storage_options != redact(dict(self.storage_options)):
                raise InvalidInput(f"Variable {TRAINING_VARIABLE!r}: storage_options must not hold credentials for "
                                   f"compute 'kubernetes' (a pod's plain env); put them in a Kubernetes Secret and "
                                   f"reference it: secret_env [{{\"env\": \"{STORAGE_OPTIONS_ENV}\", \"secret\": ..., "
                                   f"\"key\": ...}}]")
            if self.storage_options and any(item.get("env") == STORAGE_OPTIONS_ENV for item in self.secret_env):
                raise InvalidInput(f"Variable {TRAINING_VARIABLE!r}: storage_options and a secret_env "
                                   f"{STORAGE_OPTIONS_ENV!r} both set them; keep one")


def compute_fallbacks(config: TrainingConfig) -> list[dict[str, str]]:
    """The named fallback of a run whose trainer runs in a local process instead of a GPU pod."""
    if config.compute != Compute.LOCAL:
        return []
    return [{"service": "Kubernetes GPU pod", "using": "a local process running train_embeddings.py",
             "reason": f"{TRAINING_VARIABLE}'s compute is 'local'"}]


# -- local process ------------------------------------------------------------------------------
def local_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, str(ENTRYPOINT), *args]


def run_local(args: Sequence[str], *, env: Mapping[str, str] | None = None, logger: logging.Logger | None = None,
              timeout_s: float | None = None) -> dict[str, Any]:
    """Runs the entrypoint in a child process, streaming its output to ``logger`` line by line.

    Returns the metrics the entrypoint prints last; raises with the output's tail on failure."""
    logger = logger or log
    cmd = local_command(args)
    logger.info("training locally: %s", " ".join(cmd[1:]))
    child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    tail: deque[str] = deque(maxlen=40)
    result: dict[str, Any] = {}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env,
                          bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            logger.info("[trainer] %s", line)
            if line.startswith('{"train_embeddings"'):
                result = json.loads(line)["train_embeddings"]
        code = proc.wait(timeout=timeout_s)
    if code != 0:
        raise RuntimeError(f"train_embeddings.py exited with {code}; last lines:\n" + "\n".join(tail))
    return result


# -- Kubernetes pod, as plain data ----------------------------------------------------------------
@dataclass(frozen=True)
class PodSpec:
    """The training pod, without Kubernetes or Airflow types (``orchestration.pod`` renders it)."""

    name: str
    namespace: str
    kubernetes_conn_id: str
    image: str
    cmds: tuple[str, ...]
    arguments: tuple[str, ...]
    env: Mapping[str, str]                          # plain values: never secrets (validated)
    secret_env: tuple[Mapping[str, str], ...]        # {env, secret, key}: one key of a Kubernetes Secret
    secret_env_from: tuple[str, ...]                 # whole Kubernetes Secrets as env
    requests: Mapping[str, str]
    limits: Mapping[str, str]
    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, Any], ...]
    service_account: str | None
    labels: Mapping[str, str]
    startup_timeout_seconds: int


def pod_spec(config: TrainingConfig, args: Sequence[str], trainer: PodTrainer = EMBEDDINGS_TRAINER) -> PodSpec:
    """The pod that runs ``trainer``'s entrypoint on a GPU node with ``args`` (those of the local process).
    Secrets only as Secret refs: plain env holds none, and no argument carries storage options."""
    config.validate()
    if any(str(a).startswith("--storage-options") for a in args):
        raise InvalidInput("storage options never travel as a trainer argument: they reach the pod through "
                           f"{STORAGE_OPTIONS_ENV} (plain env without credentials, else a Secret ref)")
    limits = {"cpu": config.cpu, "memory": config.memory}
    if config.gpus:
        limits["nvidia.com/gpu"] = str(int(config.gpus))
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONUNBUFFERED": "1", **dict(config.env), **trainer_env(config)}
    return PodSpec(
        name=f"ragops-{trainer.component}", namespace=config.namespace, kubernetes_conn_id=config.kubernetes_conn_id,
        image=getattr(config, trainer.image_field), cmds=("python", trainer.entrypoint_in_image), arguments=tuple(args),
        env=env,
        secret_env=tuple(config.secret_env), secret_env_from=tuple(config.secret_env_from),
        requests={"cpu": config.cpu, "memory": config.memory}, limits=limits,
        node_selector=dict(config.node_selector), tolerations=tuple(config.tolerations),
        service_account=config.service_account, labels={"app": "ragops", "component": trainer.component},
        startup_timeout_seconds=config.startup_timeout_seconds,
    )
