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
    (root / "evaluations" / "report.html").write_text("<script>alert(document.cookie)</script>")
    (root / "evaluations" / "chart.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>')
    return TestClient(plugin.create_app(root, authorize=False))


def test_serves_artifacts_and_lists_evaluations(client):
    assert client.get("/files/evaluations/embeddings/abc/ndcg_by_dim.png").content == b"\x89PNG chart"
    assert client.get("/files/evaluations/embeddings/abc/report.json").json() == {"dims": [384]}
    index = client.get("/").text
    assert "evaluations/embeddings/abc/ndcg_by_dim.png" in index and "/ragops-artifacts/files/" in index


@pytest.mark.parametrize("path", ["/files/../secret.json", "/files/%2e%2e/secret.json",
                                  "/files/evaluations/../../secret.json", "/files//etc/passwd",
                                  "/files/evaluations/link.json", "/files/model.safetensors",
                                  "/files/evaluations/missing.png", "/files/evaluations/%00.png",
                                  "/files/evaluations/report.json%00.png", "/files/%00", "/files/" + "a" * 5000])
def test_refuses_paths_outside_the_root_and_unserved_files(client, path):
    assert client.get(path).status_code == 404


def test_read_only(client):
    assert client.post("/files/evaluations/embeddings/abc/report.json", content=b"{}").status_code == 405
    assert client.delete("/files/evaluations/embeddings/abc/report.json").status_code == 405


def test_html_and_svg_are_only_ever_downloads(client):
    for path in ("/files/evaluations/report.html", "/files/evaluations/chart.svg"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-disposition"].startswith("attachment")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in response.headers["content-security-policy"]
    png = client.get("/files/evaluations/embeddings/abc/ndcg_by_dim.png")
    assert "attachment" not in png.headers.get("content-disposition", "") and png.headers["x-content-type-options"]


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"])
def test_no_api_docs_are_served(client, path):
    assert client.get(path).status_code == 404


def test_plugin_registration_and_links_agree(plugin):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    assert plugin.URL_PREFIX == ARTIFACTS_URL_PREFIX
    app = plugin.RagopsArtifactsPlugin.fastapi_apps[0]
    assert app["url_prefix"] == ARTIFACTS_URL_PREFIX and isinstance(app["app"], FastAPI)
    # The app Airflow mounts is the protected one: anonymous callers get nothing, not even the docs.
    registered = TestClient(app["app"])
    assert registered.get("/").status_code == 401 and registered.get("/files/x.json").status_code == 401
    assert registered.get("/openapi.json").status_code == 404
    view = plugin.RagopsArtifactsPlugin.external_views[0]
    assert view["href"].startswith(ARTIFACTS_URL_PREFIX) and view["destination"] == "nav"
    assert artifact_url("evaluations/x/ndcg_by_dim.png", "http://airflow:8080/") == \
        "http://airflow:8080/ragops-artifacts/files/evaluations/x/ndcg_by_dim.png"


# -- authorization through the auth manager ---------------------------------------------------------


@pytest.fixture(scope="module")
def tokens():
    """Real JWTs from the configured auth manager (SimpleAuthManager here): a viewer, and a user
    the auth manager knows but grants no role, so no view access."""
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = create_auth_manager()
    return {"viewer": manager.generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer")),
            "no_role": manager.generate_jwt(SimpleAuthManagerUser(username="nobody", role=None))}


@pytest.fixture
def secured(plugin, tmp_path):
    from fastapi.testclient import TestClient

    (tmp_path / "evaluations").mkdir()
    (tmp_path / "evaluations" / "a.json").write_text("{}")
    return TestClient(plugin.create_app(tmp_path))


def test_a_viewer_may_browse(secured, tokens):
    auth = {"Authorization": f"Bearer {tokens['viewer']}"}
    assert secured.get("/files/evaluations/a.json", headers=auth).json() == {}
    assert "evaluations/a.json" in secured.get("/", headers=auth).text
    secured.cookies.set("_token", tokens["viewer"])  # the UI's session cookie works the same way
    assert secured.get("/files/evaluations/a.json").status_code == 200


def test_a_user_without_view_access_is_forbidden(secured, tokens):
    auth = {"Authorization": f"Bearer {tokens['no_role']}"}
    assert secured.get("/files/evaluations/a.json", headers=auth).status_code == 403
    assert secured.get("/", headers=auth).status_code == 403


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic YTpi"}])
def test_anonymous_or_forged_callers_get_nothing(secured, headers):
    assert secured.get("/files/evaluations/a.json", headers=headers).status_code in (401, 403)
    assert secured.get("/", headers=headers).status_code in (401, 403)


def test_the_root_is_the_tasks_setting_variable_first(plugin, tmp_path, monkeypatch):
    from_variable, from_env = tmp_path / "var-root", tmp_path / "env-root"
    monkeypatch.setenv("RAGOPS_ARTIFACT_ROOT", str(from_env))
    monkeypatch.delenv("AIRFLOW_VAR_RAGOPS_ARTIFACT_ROOT", raising=False)
    assert plugin.artifact_root() == from_env.resolve()
    # Airflow reads AIRFLOW_VAR_<KEY> as the Variable <key>, before the metadata DB.
    monkeypatch.setenv("AIRFLOW_VAR_RAGOPS_ARTIFACT_ROOT", str(from_variable))
    assert plugin.artifact_root() == from_variable.resolve()
    monkeypatch.setenv("AIRFLOW_VAR_RAGOPS_ARTIFACT_ROOT", "s3://aws_default@bucket/ragops")
    assert plugin.artifact_root() is None  # not a local folder: browsed through the ArtifactStore
    assert plugin.artifact_root_uri() == "s3://aws_default@bucket/ragops"  # (tests/integration: on MinIO)


def test_the_variable_name_is_the_one_the_tasks_read(plugin):
    from ragops.vocabulary import ARTIFACT_ROOT_VARIABLE

    assert plugin.ARTIFACT_ROOT_VARIABLE == ARTIFACT_ROOT_VARIABLE
