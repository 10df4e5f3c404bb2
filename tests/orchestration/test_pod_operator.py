"""The training pod, rendered by the KubernetesPodOperator without a cluster: GPU, placement,
arguments, and no secret in plain text."""

from __future__ import annotations

import json

import pytest

from ragops.orchestration.pod import pod_operator
from ragops.training.compute import ENTRYPOINT, ENTRYPOINT_IN_IMAGE, TrainingConfig, entrypoint_args, local_command
from tests.unit.test_pod_spec import REQUEST, SECRET_VALUE, VARIABLE


@pytest.fixture
def pod():
    from kubernetes.client import ApiClient

    config = TrainingConfig.from_value(json.dumps(VARIABLE))
    operator = pod_operator("train_pod", config, entrypoint_args(REQUEST))
    return ApiClient().sanitize_for_serialization(operator.build_pod_request_obj(dry_run=True))


def test_pod_runs_the_entrypoint_with_the_local_runners_arguments(pod):
    container = pod["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/ragops-trainer:0.1.0"
    assert container["command"] == ["python", ENTRYPOINT_IN_IMAGE]
    assert container["args"] == entrypoint_args(REQUEST)
    assert local_command(entrypoint_args(REQUEST))[1:] == [str(ENTRYPOINT), *container["args"]]
    args = container["args"]
    assert args[args.index("--matryoshka-dims") + 1] == "384,256,128,64"
    assert float(args[args.index("--lr") + 1]) == 3e-5 and args[args.index("--batch-size") + 1] == "128"
    assert pod["metadata"]["namespace"] == "ml" and pod["spec"]["serviceAccountName"] == "ragops-trainer"


def test_pod_asks_for_gpus_on_the_configured_nodes(pod):
    spec = pod["spec"]
    resources = spec["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "2"
    assert resources["limits"]["memory"] == "48Gi" and resources["requests"]["cpu"] == "8"
    assert spec["nodeSelector"] == VARIABLE["node_selector"]
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["restartPolicy"] == "Never"


def test_secrets_come_only_from_kubernetes_secrets(pod):
    container = pod["spec"]["containers"][0]
    by_name = {e["name"]: e for e in container["env"]}
    secret = by_name["AWS_SECRET_ACCESS_KEY"]
    assert "value" not in secret
    assert secret["valueFrom"]["secretKeyRef"] == {"name": "ragops-object-storage", "key": "secret-access-key"}
    assert container["envFrom"] == [{"secretRef": {"name": "ragops-object-storage"}}]
    plain = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert plain["AWS_DEFAULT_REGION"] == "eu-west-1" and plain["HF_HUB_OFFLINE"] == "1"
    # Plain values: the offline flags and the configured non-secret env, nothing else.
    assert set(plain) == {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "PYTHONUNBUFFERED",
                          "AWS_DEFAULT_REGION", "RAGOPS_STORAGE_OPTIONS"}   # storage options without credentials
    assert json.loads(plain["RAGOPS_STORAGE_OPTIONS"]) == VARIABLE["storage_options"]
    assert not any("storage" in arg or "minio" in arg for arg in container["args"])   # never an argument
    assert SECRET_VALUE not in json.dumps(pod)


def test_storage_credentials_reach_the_pod_only_from_a_secret():
    """Issue 9, defect 7: storage options holding credentials come from a Kubernetes Secret ref."""
    from kubernetes.client import ApiClient

    ref = {"env": "RAGOPS_STORAGE_OPTIONS", "secret": "ragops-storage", "key": "options.json"}
    variable = {**VARIABLE, "storage_options": {}, "secret_env": [ref]}
    operator = pod_operator("train_pod", TrainingConfig.from_value(variable), entrypoint_args(REQUEST))
    pod = ApiClient().sanitize_for_serialization(operator.build_pod_request_obj(dry_run=True))
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert "value" not in env["RAGOPS_STORAGE_OPTIONS"]
    assert env["RAGOPS_STORAGE_OPTIONS"]["valueFrom"]["secretKeyRef"] == {"name": "ragops-storage", "key": "options.json"}


def test_the_variable_configures_the_run(monkeypatch):
    from ragops.orchestration.pod import load_config

    monkeypatch.setenv("AIRFLOW_VAR_RAGOPS_TRAINING", json.dumps(VARIABLE))
    assert load_config().image == VARIABLE["image"] and load_config().compute == "kubernetes"
    assert load_config("local").compute == "local"
    monkeypatch.delenv("AIRFLOW_VAR_RAGOPS_TRAINING")
    assert load_config().compute == "local"
