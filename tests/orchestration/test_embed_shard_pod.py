"""rag_index's GPU embedding shard, rendered by the KubernetesPodOperator without a cluster: the
trainers' image running embed_shard.py with the local process's arguments, GPU limits and
placement from the ragops_training Variable, storage credentials only as Secret refs."""

from __future__ import annotations

import json

import pytest

from ragops.config import RagopsSettings
from ragops.indexing import embed_shard
from ragops.indexing.params import IndexParams
from ragops.indexing.records import IndexRun, Shard
from ragops.indexing.shard_compute import EMBED_SHARD_POD, ENTRYPOINT, encode_shard, entrypoint_args, local_command
from ragops.models import ModelRef
from ragops.orchestration.pod import pod_operator
from ragops.runs import RunRef
from ragops.services import Services
from ragops.training.compute import TrainingConfig
from tests.unit.test_pod_spec import SECRET_VALUE, VARIABLE

ROOT = "s3://aws_default@ragops-artifacts/ragops"   # Airflow's form: the connection id in the userinfo
MODEL = ModelRef("embeddings:v3", "ab" * 32, f"{ROOT}/models/embeddings/v3", version=3, artifact_id=7)
PLAN = {"collection": "RagDocs_0123456789ab", "chunks_uri": f"{ROOT}/chunks/RagDocs/{'c' * 64}.parquet",
        "to_embed": [f"doc:{i}" for i in range(2500)]}
SHARD = Shard("RagDocs_0123456789ab", f"{ROOT}/plans/RagDocs_0123456789ab/{'d' * 64}.json", 2, 1024)
PARAMS = IndexParams(embed_compute="kubernetes", batch_size=256)


def services(root: str) -> Services:
    return Services(RagopsSettings.from_env({"RAGOPS_ARTIFACT_ROOT": root, "RAGOPS_VECTOR_DIR": "/nonexistent"}))


def shard_args() -> tuple[list[str], str]:
    run = IndexRun(RunRef("rag_index/r1", "rag_index", "r1"), "RagDocs", MODEL, 256, "weaviate")
    return entrypoint_args(services(ROOT), PARAMS, run, SHARD, PLAN)


@pytest.fixture
def pod():
    from kubernetes.client import ApiClient

    operator = pod_operator("embed_shard_pod", TrainingConfig.from_value(json.dumps(VARIABLE)), shard_args()[0],
                            EMBED_SHARD_POD)
    return ApiClient().sanitize_for_serialization(operator.build_pod_request_obj(dry_run=True))


def test_the_shard_pod_runs_embed_shard_in_the_trainers_image_with_the_local_processs_arguments(pod):
    args, output_uri = shard_args()
    container = pod["spec"]["containers"][0]
    assert container["image"] == VARIABLE["image"]
    assert container["command"] == ["python", "/opt/ragops/embed_shard.py"]
    assert container["args"] == args
    assert local_command(args)[1:] == [str(ENTRYPOINT), *container["args"]]
    assert pod["metadata"]["labels"]["component"] == "embed-shard"
    # The last shard of 2,500 ids at 1,024 per shard is [2048, 2500); the entrypoint parses the arguments.
    parsed = embed_shard.build_parser().parse_args(container["args"])
    assert (parsed.start, parsed.end, parsed.batch_size) == (2048, 2500, 256)
    assert parsed.model_hash == MODEL.content_hash
    # Plain fsspec URIs (no Airflow connection name), content-addressed by chunk set, model, plan and range.
    assert parsed.model_uri == "s3://ragops-artifacts/ragops/models/embeddings/v3"
    assert parsed.output_uri == "s3://ragops-artifacts/ragops/embeddings/cccccccccccccccc/abababababababab/" \
                                "dddddddddddddddd/2048-2500"
    assert output_uri.endswith("/embeddings/cccccccccccccccc/abababababababab/dddddddddddddddd/2048-2500")
    assert not any("aws_default" in a for a in container["args"])


def test_the_shard_pod_asks_for_gpus_on_the_configured_nodes(pod):
    spec = pod["spec"]
    resources = spec["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "2" and resources["limits"]["memory"] == "48Gi"
    assert spec["nodeSelector"] == VARIABLE["node_selector"]
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["metadata"]["namespace"] == "ml" and spec["serviceAccountName"] == "ragops-trainer"


def test_the_shard_pods_storage_credentials_come_only_from_kubernetes_secrets(pod):
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert "value" not in env["AWS_SECRET_ACCESS_KEY"]
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "ragops-object-storage",
                                                                         "key": "secret-access-key"}
    assert container["envFrom"] == [{"secretRef": {"name": "ragops-object-storage"}}]
    assert json.loads(env["RAGOPS_STORAGE_OPTIONS"]["value"]) == VARIABLE["storage_options"]   # no credential
    assert not any("storage" in a or "minio" in a for a in container["args"])
    assert SECRET_VALUE not in json.dumps(pod)


def test_kubernetes_shards_refuse_a_local_artifact_root(tmp_path):
    from ragops.errors import InvalidInput

    run = IndexRun(RunRef("rag_index/r1", "rag_index", "r1"), "RagDocs", MODEL, 256, "lancedb")
    plan = PLAN | {"chunks_uri": str(tmp_path / "chunks.parquet")}
    shard = Shard("RagDocs_0123456789ab", str(tmp_path / "plan.json"), 0, 1024)
    with pytest.raises(InvalidInput, match="object-storage artifact root"):
        encode_shard(services(str(tmp_path / "artifacts")), PARAMS, run, shard, plan)


def test_the_entrypoint_runs_alone_as_in_the_image(tmp_path):
    """The pod runs embed_shard.py alone (copied into the trainers' image): it imports nothing from ragops."""
    import ast
    import os
    import subprocess
    import sys

    imported = set()
    for node in ast.walk(ast.parse(ENTRYPOINT.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert "ragops" not in imported
    alone = tmp_path / "embed_shard.py"
    alone.write_text(ENTRYPOINT.read_text())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(alone), "--help"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and "--model-hash" in proc.stdout
