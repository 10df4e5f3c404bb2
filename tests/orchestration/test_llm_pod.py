"""The LLM training pod, rendered by the KubernetesPodOperator without a cluster: the LLM trainer's
image and entrypoint, the arguments of the local process, GPU limits, placement, secrets by reference."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from ragops.llm.compute import LLM_TRAINER, local_command
from ragops.llm.params import LLMFinetuneParams
from ragops.llm.steps import hyperparameters, scratch_dir, trainer_args
from ragops.orchestration.pod import pod_operator, pod_runner
from ragops.training.compute import TrainingConfig
from tests.unit.test_pod_spec import SECRET_VALUE, VARIABLE

LLM_VARIABLE = {**VARIABLE, "llm_image": "registry.example.com/ragops-llm-trainer:0.1.0"}
OUTPUT = "s3://ragops/models/llm/runs/0123"
PARAMS = LLMFinetuneParams(load_in_4bit=True, max_steps=500, save_steps=25, lora_r=64, lora_alpha=16,
                           target_modules=["q_proj", "v_proj"], lr=1e-4)


def llm_args() -> list[str]:
    return trainer_args({"base_model": "s3://ragops/models/llm/merged/base", "dataset":
                         "s3://ragops/datasets/llm-instructions/abc", "checkpoint": OUTPUT},
                        hyperparameters(PARAMS), output_dir=scratch_dir(OUTPUT))


@pytest.fixture
def pod():
    from kubernetes.client import ApiClient

    operator = pod_operator("train_pod", TrainingConfig.from_value(json.dumps(LLM_VARIABLE)), llm_args(), LLM_TRAINER)
    return ApiClient().sanitize_for_serialization(operator.build_pod_request_obj(dry_run=True))


def test_pod_runs_train_llm_in_the_llm_image_with_the_local_processs_arguments(pod):
    container = pod["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/ragops-llm-trainer:0.1.0"
    assert container["command"] == ["python", "/opt/ragops/train_llm.py"]
    assert container["args"] == llm_args() and local_command(llm_args())[2:] == container["args"]
    args = container["args"]
    assert "--load-in-4bit" in args and args[args.index("--checkpoint-uri") + 1] == OUTPUT
    assert args[args.index("--save-steps") + 1] == "25" and args[args.index("--lora-r") + 1] == "64"
    assert args[args.index("--target-modules") + 1] == "q_proj,v_proj"
    assert "--storage-options" not in args  # the trainer reads them from its environment
    assert pod["metadata"]["labels"]["component"] == "train-llm" and pod["metadata"]["name"].startswith(
        "ragops-train-llm")


def test_pod_asks_for_gpus_on_the_configured_nodes(pod):
    spec = pod["spec"]
    resources = spec["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "2" and resources["limits"]["memory"] == "48Gi"
    assert spec["nodeSelector"] == VARIABLE["node_selector"]
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    container = spec["containers"][0]
    secret = {e["name"]: e for e in container["env"]}["AWS_SECRET_ACCESS_KEY"]
    assert "value" not in secret and secret["valueFrom"]["secretKeyRef"]["name"] == "ragops-object-storage"
    assert SECRET_VALUE not in json.dumps(pod)


def test_the_runtime_runs_the_llm_trainer_in_its_pod(monkeypatch):
    """What steps.train calls (svc.run_trainer_pod(args, LLM_TRAINER)) executes this operator."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    ran = []
    monkeypatch.setattr(KubernetesPodOperator, "execute", lambda self, context: ran.append(self))
    monkeypatch.setenv("AIRFLOW_VAR_RAGOPS_TRAINING", json.dumps(LLM_VARIABLE))
    pod_runner(SimpleNamespace(context={}), LLM_TRAINER)(llm_args())
    (operator,) = ran
    assert operator.image == LLM_VARIABLE["llm_image"] and operator.cmds == ["python", "/opt/ragops/train_llm.py"]
    assert operator.arguments == llm_args() and operator.reattach_on_restart is True
    # The embedding trainer's pod is unchanged by default.
    pod_runner(SimpleNamespace(context={}))(["--x"])
    assert ran[1].image == VARIABLE["image"] and ran[1].cmds == ["python", "/opt/ragops/train_embeddings.py"]
