"""The artifacts plugin: serves files under the artifact root, read-only, and nothing outside it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ragops.training.links import ARTIFACTS_URL_PREFIX, artifact_url

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "ragops_artifacts.py"


@pytest.fixture(scope="module")
def plugin():
    spec = importlib.util.spec_from_file_location("ragops_artifacts_plugin", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def client(plugin, tmp_path):
    from fastapi.testclient import TestClient

    root = tmp_path / "artifacts"
    (root / "evaluations" / "embeddings" / "abc").mkdir(parents=True)
    (root / "evaluations" / "embeddings" / "abc" / "ndcg_by_dim.png").write_bytes(b"\x89PNG chart")
    (root / "evaluations" / "embeddings" / "abc" / "report.json").write_text('{"dims": [384]}')
    (root / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "secret.json").write_text('{"password": "x"}')
    (root / "evaluations" / "link.json").symlink_to(tmp_path / "secret.json")
    return TestClient(plugin.create_app(root, authenticate=False))


def test_serves_artifacts_and_lists_evaluations(client):
    assert client.get("/files/evaluations/embeddings/abc/ndcg_by_dim.png").content == b"\x89PNG chart"
    assert client.get("/files/evaluations/embeddings/abc/report.json").json() == {"dims": [384]}
    index = client.get("/").text
    assert "evaluations/embeddings/abc/ndcg_by_dim.png" in index and "/ragops-artifacts/files/" in index


@pytest.mark.parametrize("path", ["/files/../secret.json", "/files/%2e%2e/secret.json",
                                  "/files/evaluations/../../secret.json", "/files//etc/passwd",
                                  "/files/evaluations/link.json", "/files/model.safetensors",
                                  "/files/evaluations/missing.png"])
def test_refuses_paths_outside_the_root_and_unserved_files(client, path):
    assert client.get(path).status_code == 404


def test_read_only(client):
    assert client.post("/files/evaluations/embeddings/abc/report.json", content=b"{}").status_code == 405
    assert client.delete("/files/evaluations/embeddings/abc/report.json").status_code == 405


def test_plugin_registration_and_links_agree(plugin):
    assert plugin.URL_PREFIX == ARTIFACTS_URL_PREFIX
    app = plugin.RagopsArtifactsPlugin.fastapi_apps[0]
    assert app["url_prefix"] == ARTIFACTS_URL_PREFIX and app["app"] is not None
    view = plugin.RagopsArtifactsPlugin.external_views[0]
    assert view["href"].startswith(ARTIFACTS_URL_PREFIX) and view["destination"] == "nav"
    assert artifact_url("evaluations/x/ndcg_by_dim.png", "http://airflow:8080/") == \
        "http://airflow:8080/ragops-artifacts/files/evaluations/x/ndcg_by_dim.png"


def test_requires_a_signed_in_user(plugin, tmp_path):
    from fastapi.testclient import TestClient

    (tmp_path / "a.json").write_text("{}")
    response = TestClient(plugin.create_app(tmp_path)).get("/files/a.json")
    assert response.status_code in (401, 403)
