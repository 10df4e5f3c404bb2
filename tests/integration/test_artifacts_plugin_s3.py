"""The artifacts plugin on an object-storage root: MinIO's S3 API, through the tasks' own ArtifactStore.

The root is ``s3://ragops_minio@<bucket>/<prefix>``, its credentials only in the connection
(AIRFLOW_CONN_RAGOPS_MINIO, see conftest.py). The objects are written with a separate boto3 client,
as a task on another host would have left them, and read back through the plugin.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.minio

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "ragops_artifacts.py"


@pytest.fixture(scope="module")
def plugin():
    spec = importlib.util.spec_from_file_location("ragops_artifacts_plugin_s3", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def s3_root(minio_root, minio_server, s3_client):
    prefix = minio_root.split("/", 3)[3]
    objects = {"evaluations/embeddings/abc/ndcg_by_dim.png": b"\x89PNG chart",
               "evaluations/embeddings/abc/report.json": b'{"dims": [384]}',
               "evaluations/report.html": b"<script>alert(document.cookie)</script>",
               "models/m1/model.safetensors": b"weights"}
    for key, body in objects.items():
        s3_client.put_object(Bucket=minio_server.bucket, Key=f"{prefix}/{key}", Body=body)
    return minio_root


@pytest.fixture
def client(plugin, s3_root, monkeypatch):
    from fastapi.testclient import TestClient

    # The tasks' setting, as Airflow reads the Variable (AIRFLOW_VAR_<KEY> before the metadata DB).
    monkeypatch.setenv("AIRFLOW_VAR_RAGOPS_ARTIFACT_ROOT", s3_root)
    return TestClient(plugin.create_app(authorize=False))


def test_lists_and_serves_objects_of_the_bucket(client):
    index = client.get("/")
    assert index.status_code == 200
    assert "evaluations/embeddings/abc/ndcg_by_dim.png" in index.text
    assert "evaluations/embeddings/abc/report.json" in index.text
    assert "model.safetensors" not in index.text
    chart = client.get("/files/evaluations/embeddings/abc/ndcg_by_dim.png")
    assert chart.status_code == 200 and chart.content == b"\x89PNG chart"
    assert chart.headers["content-type"] == "image/png" and chart.headers["x-content-type-options"] == "nosniff"
    assert client.get("/files/evaluations/embeddings/abc/report.json").json() == {"dims": [384]}


def test_html_from_the_bucket_is_only_a_download(client):
    response = client.get("/files/evaluations/report.html")
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in response.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/files/../secret.json", "/files/%2e%2e/x.json", "/files/evaluations/../../x.json",
                                  "/files/models/m1/model.safetensors", "/files/evaluations/missing.png",
                                  "/files/evaluations/%00.png", "/files/evaluations/report.json%00.png",
                                  "/files/evaluations", "/files/" + "a" * 5000 + ".json"])
def test_refuses_keys_outside_the_root_and_unserved_types(client, path):
    assert client.get(path).status_code == 404


def test_credentials_come_only_from_the_connection(plugin, s3_root, monkeypatch):
    """The same bucket under a connection id that does not exist: nothing is read (conftest removed
    every AWS_* variable and config file, so the plugin has no credentials but the connection's)."""
    from fastapi.testclient import TestClient

    monkeypatch.delenv("AIRFLOW_CONN_RAGOPS_NO_SUCH_CONN", raising=False)
    unknown = s3_root.replace("ragops_minio@", "ragops_no_such_conn@")
    client = TestClient(plugin.create_app(unknown, authorize=False), raise_server_exceptions=False)
    assert client.get("/files/evaluations/embeddings/abc/report.json").status_code != 200


def test_the_control_plane_reads_corpus_snapshots_from_the_bucket(minio_root, registry):
    """The control plane's diff of two collection versions reads their corpus snapshots through the
    same ArtifactStore on ObjectStoragePath (credentials from the connection only)."""
    import pyarrow as pa
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.sdk import ObjectStoragePath
    from fastapi.testclient import TestClient

    from ragops.artifacts import ArtifactStore
    from ragops.config import RagopsSettings
    from ragops.control_plane.app import create_app
    from ragops.services import Services
    from ragops.vocabulary import ArtifactKind, Relation

    store = ArtifactStore(minio_root, root_path=ObjectStoragePath(minio_root))
    collections = []
    for tag, docs in (("a", {"d1": "h1", "d2": "h2"}), ("b", {"d1": "h1-new", "d3": "h3"})):
        uri = store.write_table(f"corpus/RagDocs/{tag}.parquet",
                                pa.table({"doc_id": list(docs), "content_hash": list(docs.values())}))
        corpus = registry.record_artifact(ArtifactKind.CORPUS, "RagDocs", tag, uri)
        chunks = registry.record_artifact(ArtifactKind.CHUNKS, "RagDocs", tag, f"{minio_root}/chunks/{tag}",
                                          parents=[(corpus.id, Relation.CHUNKED_FROM)])
        collections.append(registry.record_artifact(ArtifactKind.COLLECTION, "RagDocs", tag, f"RagDocs_{tag}",
                                                    parents=[(chunks.id, Relation.EMBEDDED_FROM)]))
    settings = RagopsSettings(pg_dsn=registry.dsn, schema=registry.schema, artifact_root=minio_root)
    app = create_app(lambda: Services(settings, artifact_root_path=ObjectStoragePath(minio_root)),
                     api_base_url=lambda: "http://127.0.0.1:9")
    token = create_auth_manager().generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
    old, new = collections
    html = TestClient(app).get(f"/collections/RagDocs?compare={old.id},{new.id}",
                               headers={"Authorization": f"Bearer {token}"}).text
    counts = {name: re.search(rf'data-testid="diff-{name}-count">(\d+)<', html).group(1)
              for name in ("added", "changed", "removed")}
    assert counts == {"added": "1", "changed": "1", "removed": "1"}
