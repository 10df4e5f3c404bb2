"""The control plane plugin: pages checked against a real Postgres registry, real Airflow auth
(SimpleAuthManager JWTs), and actions forwarded, with the user's own token, to a small HTTP server
that speaks the REST API's trigger endpoint and checks the token with the same auth manager.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pytest

from ragops.config import RagopsSettings
from ragops.services import Services
from ragops.vocabulary import (
    CONTINUOUS_EVAL_NAME,
    CONTROL_PLANE_PREFIX,
    MODEL_NAME,
    AliasKind,
    ArtifactKind,
    Relation,
    RunStatus,
    Stage,
    Status,
)

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "ragops_control_plane.py"
HOSTILE = '<script>alert("x")</script>'


# -- a registry as the DAGs leave it -----------------------------------------------------------------
def corpus(store, registry, run_key, docs: dict[str, str], version_hash: str):
    uri = store.write_table(f"corpus/RagDocs/{version_hash}.parquet",
                            pa.table({"doc_id": list(docs), "content_hash": list(docs.values())}))
    return registry.record_artifact(ArtifactKind.CORPUS, "RagDocs", version_hash, uri, status=Status.LOADED,
                                    params={"sources": [{"type": "folder", "path": "/opt/airflow/data/docs",
                                                         "name": "docs"}]}, run_key=run_key)


def collection(registry, run_key, corpus_art, model, tag: str, status: str):
    chunks = registry.record_artifact(ArtifactKind.CHUNKS, "RagDocs", f"chunks-{tag}", f"/x/chunks-{tag}.parquet",
                                      run_key=run_key, parents=[(corpus_art.id, Relation.CHUNKED_FROM)])
    coll = registry.record_artifact(ArtifactKind.COLLECTION, "RagDocs", f"coll-{tag}", f"RagDocs_{tag}",
                                    metrics={"chunks": 12}, status=status, run_key=run_key,
                                    parents=[(chunks.id, Relation.EMBEDDED_FROM), (model.id, Relation.EMBEDDED_WITH)])
    registry.record_artifact(ArtifactKind.EVALUATION, "RagDocs-gate", f"gate-{tag}", f"/x/gate-{tag}.json",
                             metrics={"passed": status != Status.FAILED_GATE, "retrieval_smoke": 0.9},
                             status=Status.PASSED, run_key=run_key, parents=[(coll.id, Relation.EVALUATES)])
    return chunks, coll


@pytest.fixture(scope="module")
def registry(pg_dsn):
    """One registry for the module: the pages only read it, and the actions only reach the API."""
    from ragops.lineage import Registry

    reg = Registry(pg_dsn, schema=f"t_{uuid.uuid4().hex[:12]}")
    reg.migrate()
    yield reg
    reg.drop()


@pytest.fixture(scope="module")
def world(registry, tmp_path_factory):
    from ragops.artifacts import ArtifactStore
    from ragops.synthetic.dataset import save_dataset

    store = ArtifactStore(tmp_path_factory.mktemp("control-plane") / "artifacts")
    run = registry.start_run("rag_index", "manual__2026-11-20T00:00:00+00:00",
                             fallbacks=[{"service": "Weaviate", "using": "embedded LanceDB", "reason": "no WEAVIATE_URL"}])
    registry.record_dq(run, "documents", "corpus", True, {"documents": 3})
    registry.record_alert(run, "warning", "gate slow", f"took long {HOSTILE}")
    registry.finish_run(run, RunStatus.SUCCESS, {"collection": "RagDocs_b", "note": HOSTILE})

    base = registry.record_artifact(ArtifactKind.MODEL, MODEL_NAME, "m1", "package://m1", run_key=run)
    model2 = registry.record_artifact(ArtifactKind.MODEL, MODEL_NAME, "m2", "/x/m2", run_key=run,
                                      parents=[(base.id, Relation.FINETUNED_FROM)])
    registry.set_stage(base.id, Stage.PRODUCTION, reason="first", exclusive=True)
    registry.set_stage(model2.id, Stage.PRODUCTION, reason="gate passed", exclusive=True)
    report = {"dims": [384, 128], "primary_set": "synthetic-test",
              "models": {label: {"metrics": {"synthetic-test": {"384": {"ndcg@10": v}, "128": {"ndcg@10": v - 0.1}}}}
                         for label, v in (("base", 0.61), ("live", 0.62), ("candidate", 0.71))}}
    report_uri = store.write_json("evaluations/embeddings/m2/report.json", report)
    gate = registry.record_artifact(ArtifactKind.EVALUATION, f"{MODEL_NAME}-gate", "eval-m2", report_uri,
                                    metrics={"decision": "promoted", "reasons": [f"ndcg@10 up by 0.09 {HOSTILE}"]},
                                    status=Status.PROMOTED, run_key=run, parents=[(model2.id, Relation.EVALUATES)])

    corpus1 = corpus(store, registry, run, {"a": "h1", "b": "h2", "c": "h3"}, "snap1")
    corpus2 = corpus(store, registry, run, {"a": "h1-changed", "b": "h2", "d": "h4"}, "snap2")
    chunks1, coll1 = collection(registry, run, corpus1, base, "a", Status.SUPERSEDED)
    chunks2, coll2 = collection(registry, run, corpus2, model2, "b", Status.LIVE)
    _, coll3 = collection(registry, run, corpus2, model2, "c", Status.FAILED_GATE)
    registry.set_alias(AliasKind.COLLECTION, "RagDocs", coll1.id, reason="gate passed", run_key=run)
    registry.set_alias(AliasKind.COLLECTION, "RagDocs", coll2.id, reason="gate passed", run_key=run)

    rows = [{"query_id": f"q{i}", "query": f"how to vacuum {i}", "positive": f"text {i}", "negative": None,
             "doc_id": "a", "chunk_id": f"c{i}", "kind": "heading"} for i in range(3)]
    rel = save_dataset({"train": rows[:2], "test": rows[2:]}, store, "ds1")
    dataset = registry.record_artifact(ArtifactKind.DATASET, "synthetic-queries", "ds1", store.uri(rel),
                                       metrics={"rows_train": 2, "rows_test": 1, "filter_counts": {"too_short": 4}},
                                       status=Status.USABLE, run_key=run, parents=[(chunks2.id, Relation.GENERATED_FROM)])
    review = registry.record_artifact(ArtifactKind.REVIEW, "synthetic-queries", "rev1", "/x/review.csv",
                                      params={"dataset_id": dataset.id}, metrics={"accepted": 2, "rejected": 1},
                                      status=Status.APPLIED, run_key=run)
    hostile = registry.record_artifact(ArtifactKind.DATASET, HOSTILE, "h1", "/x/h", metrics={"rows_train": 1},
                                       run_key=run)
    evals = [registry.record_artifact(ArtifactKind.EVALUATION, CONTINUOUS_EVAL_NAME, f"ev{i}", f"/x/ev{i}.json",
                                      params={"collection_id": coll2.id, "model_id": model2.id, "reranker_id": None},
                                      metrics={"sets": {"golden": {"ndcg@10": 0.5 + i / 10, "mrr@10": 0.4,
                                                                   "recall@100": 0.9, "queries": 20,
                                                                   "by_source": {"docs": {"ndcg@10": 0.5}}}}},
                                      status=Status.DONE, parents=[(coll2.id, Relation.EVALUATES)]) for i in range(2)]
    svc = Services(RagopsSettings(pg_dsn=registry.dsn, schema=registry.schema, artifact_root=str(store._root)))
    return {"svc": svc, "run": run, "base": base, "model2": model2, "gate": gate, "coll1": coll1, "coll2": coll2,
            "coll3": coll3, "chunks2": chunks2, "corpus2": corpus2, "dataset": dataset, "review": review,
            "hostile": hostile, "evals": evals}


# -- the REST API's trigger endpoint, checking tokens with the real auth manager ----------------------
class TriggerApi:
    def __init__(self):
        self.requests: list[dict] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                from airflow.api_fastapi.app import get_auth_manager
                from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

                match = re.fullmatch(r"/api/v2/dags/([^/]+)/dagRuns", self.path)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                try:
                    user = asyncio.run(get_auth_manager().get_user_from_token(token))
                except Exception:  # noqa: BLE001 (any invalid token: 401, as the API server answers)
                    return self.reply(401, {"detail": "Not authenticated"})
                dag_id = match.group(1) if match else ""
                api.requests.append({"dag_id": dag_id, "body": body, "token": token, "user": user.get_name()})
                if not get_auth_manager().is_authorized_dag(method="POST", access_entity=DagAccessEntity.RUN,
                                                            details=DagDetails(id=dag_id), user=user):
                    return self.reply(403, {"detail": "Forbidden"})
                run_id = f"manual__{len(api.requests)}"
                return self.reply(200, {"dag_run_id": run_id, "dag_id": dag_id, "state": "queued",
                                        "conf": body["conf"]})

            def reply(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def tokens():
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = create_auth_manager()
    return {role or "no_role": manager.generate_jwt(SimpleAuthManagerUser(username=f"{role}-person", role=role))
            for role in ("viewer", "user", None)}


@pytest.fixture
def api():
    server = TriggerApi()
    yield server
    server.close()


@pytest.fixture
def client(world, api, tokens):
    from fastapi.testclient import TestClient

    from ragops.control_plane.app import create_app

    app = create_app(lambda: world["svc"], api_base_url=lambda: api.url)
    return TestClient(app, base_url="http://airflow.test")


def as_user(tokens, role):
    return {"Authorization": f"Bearer {tokens[role]}"}


def text_of(html: str, name: str) -> str:
    match = re.search(rf'data-testid="{re.escape(name)}"[^>]*>([^<]*)<', html)
    assert match, f"no data-testid={name!r} on the page"
    return match.group(1).strip()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', html).group(1)


def svg_of(html: str, css_class: str) -> ET.Element:
    """The page's inline SVG (of a class), parsed as XML: well-formed even with hostile names in it."""
    match = re.search(rf'<svg [^>]*class="{css_class}".*?</svg>', html, re.S)
    assert match, f"no {css_class} SVG on the page"
    return ET.fromstring(match.group(0))


# -- pages ------------------------------------------------------------------------------------------
PAGES = ["/", "/collections", "/collections/RagDocs", "/models", "/datasets", "/runs", "/evaluations",
         "/lineage/1"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_needs_view_access(client, tokens, path):
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer forged"}).status_code == 403
    assert client.get(path, headers=as_user(tokens, "no_role")).status_code == 403
    response = client.get(path, headers=as_user(tokens, "viewer"))
    assert response.status_code == 200
    assert "script-src" not in response.headers["content-security-policy"]  # default-src 'none': no script
    assert response.headers["x-content-type-options"] == "nosniff"


def test_an_unmigrated_registry_is_named_not_a_crash(registry, tokens):
    from fastapi.testclient import TestClient

    from ragops.control_plane.app import create_app

    settings = RagopsSettings(pg_dsn=registry.dsn, schema="t_never_migrated", artifact_root="/nonexistent")
    app = create_app(lambda: Services(settings), api_base_url=lambda: "http://127.0.0.1:9")
    response = TestClient(app).get("/collections", headers=as_user(tokens, "viewer"))
    assert response.status_code == 503 and "python -m ragops migrate" in response.text


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_no_api_docs(client, tokens, path):
    assert client.get(path, headers=as_user(tokens, "viewer")).status_code == 404


def test_overview_links_every_page(client, tokens):
    html = client.get("/", headers=as_user(tokens, "viewer")).text
    for name, path in (("collections", "collections"), ("models", "models"), ("datasets", "datasets"),
                       ("runs", "runs"), ("evaluations", "evaluations")):
        assert re.search(rf'href="{CONTROL_PLANE_PREFIX}/{path}" data-testid="nav-{name}"', html)
    assert "RagDocs" in html  # what is live


def test_collection_page_agrees_with_the_registry(client, tokens, world, registry):
    html = client.get("/collections/RagDocs", headers=as_user(tokens, "viewer")).text
    live = registry.get_alias(AliasKind.COLLECTION, "RagDocs")
    assert text_of(html, "live-version") == str(live.version) == str(world["coll2"].version)
    assert text_of(html, "live-collection-id") == str(world["coll2"].id)
    # Rollback is offered to the earlier usable version only: not to the live one, not to a failed gate.
    assert f'data-testid="rollback-{world["coll1"].id}"' in html
    assert f'data-testid="rollback-{world["coll2"].id}"' not in html
    assert f'data-testid="rollback-{world["coll3"].id}"' not in html
    assert html.count('data-testid="alias-history"') == len(registry.alias_history(AliasKind.COLLECTION, "RagDocs"))
    assert "retrieval_smoke" in html  # the gate report's metrics
    assert client.get("/collections/NoSuchAlias", headers=as_user(tokens, "viewer")).status_code == 404


def test_diff_between_two_versions_from_the_corpus_snapshots(client, tokens, world):
    a, b = world["coll1"].id, world["coll2"].id
    html = client.get(f"/collections/RagDocs?compare={a},{b}", headers=as_user(tokens, "viewer")).text
    assert (text_of(html, "diff-added-count"), text_of(html, "diff-changed-count"),
            text_of(html, "diff-removed-count")) == ("1", "1", "1")
    assert re.search(r'data-testid="diff-added"><code>d</code>', html)
    assert re.search(r'data-testid="diff-changed"><code>a</code>', html)
    assert re.search(r'data-testid="diff-removed"><code>c</code>', html)
    assert client.get("/collections/RagDocs?compare=1", headers=as_user(tokens, "viewer")).status_code == 400
    other = client.get(f"/collections/RagDocs?compare={world['base'].id},{b}", headers=as_user(tokens, "viewer"))
    assert "must be versions of the collection" in other.text


def test_models_page_shows_stages_gate_and_dim_chart(client, tokens, world, registry):
    html = client.get("/models", headers=as_user(tokens, "viewer")).text
    for art in (world["base"], world["model2"]):
        assert text_of(html, f"stage-{art.id}") == registry.get_artifact(art.id).stage
    assert text_of(html, f"stage-{world['base'].id}") == Stage.ARCHIVED
    assert f'data-testid="rollback-{world["base"].id}"' in html  # archived, was production
    assert f'data-testid="rollback-{world["model2"].id}"' not in html
    chart = svg_of(html, "chart")
    values = {c.get("data-testid"): float(c.get("data-value")) for c in chart.iter("{http://www.w3.org/2000/svg}circle")}
    gate = world["gate"].id
    assert values[f"dim-point-{gate}-synthetic-test-candidate-384"] == pytest.approx(0.71)
    assert values[f"dim-point-{gate}-synthetic-test-base-128"] == pytest.approx(0.51)
    assert "promoted" in html and HOSTILE not in html and "&lt;script&gt;" in html


def test_datasets_page_counts_rows_and_samples_them(client, tokens, world):
    html = client.get("/datasets", headers=as_user(tokens, "viewer")).text
    assert text_of(html, f"dataset-rows-{world['dataset'].id}") == "3"
    assert "too_short" in html and f'data-testid="review-{world["review"].id}"' in html
    sample = client.get(f"/datasets?sample={world['dataset'].id}", headers=as_user(tokens, "viewer")).text
    assert "how to vacuum 0" in sample and "how to vacuum 2" in sample  # read through the ArtifactStore


def test_hostile_names_are_escaped_everywhere(client, tokens, world):
    for path in ("/datasets", "/runs", "/models", f"/lineage/{world['hostile'].id}"):
        html = client.get(path, headers=as_user(tokens, "viewer")).text
        assert HOSTILE not in html and "<script" not in html, path
        assert "&lt;script&gt;" in html, path


def test_runs_page_links_to_the_airflow_run(client, tokens, world):
    html = client.get("/runs", headers=as_user(tokens, "viewer")).text
    assert 'href="/dags/rag_index/runs/manual__2026-11-20T00%3A00%3A00%2B00%3A00"' in html
    assert "embedded LanceDB" in html and "gate slow" in html and "documents on corpus" in html
    only = client.get("/runs?dag_id=rag_model_rollback", headers=as_user(tokens, "viewer")).text
    assert "rag_index" not in only.split("<table>", 1)[1]


def test_lineage_graph_is_server_side_svg_with_edges_and_links(client, tokens, world):
    coll = world["coll2"]
    html = client.get(f"/lineage/{coll.id}", headers=as_user(tokens, "viewer")).text
    svg = svg_of(html, "lineage")
    ns = "{http://www.w3.org/2000/svg}"
    nodes = {a.get("data-testid"): a.get("href") for a in svg.iter(f"{ns}a")}
    for art in (world["corpus2"], world["chunks2"], coll, world["model2"], world["base"], *world["evals"]):
        assert nodes[f"node-{art.id}"] == f"{CONTROL_PLANE_PREFIX}/lineage/{art.id}"
    assert f"node-{world['dataset'].id}" not in nodes  # made from the chunk set: a sibling, not a descendant
    edges = {g.get("data-testid"): g.get("data-relation") for g in svg.iter(f"{ns}g") if g.get("class") == "edge"}
    assert edges[f"edge-{world['chunks2'].id}-{coll.id}"] == Relation.EMBEDDED_FROM
    assert edges[f"edge-{world['model2'].id}-{coll.id}"] == Relation.EMBEDDED_WITH
    assert edges[f"edge-{world['corpus2'].id}-{world['chunks2'].id}"] == Relation.CHUNKED_FROM
    assert edges[f"edge-{world['base'].id}-{world['model2'].id}"] == Relation.FINETUNED_FROM
    assert edges[f"edge-{coll.id}-{world['evals'][0].id}"] == Relation.EVALUATES
    assert client.get("/lineage/999999", headers=as_user(tokens, "viewer")).status_code == 404


def test_evaluation_trends_have_points_and_promotions(client, tokens, world):
    html = client.get("/evaluations", headers=as_user(tokens, "viewer")).text
    charts = [ET.fromstring(m) for m in re.findall(r'<svg [^>]*class="chart".*?</svg>', html, re.S)]
    ns = "{http://www.w3.org/2000/svg}"
    points = {c.get("data-testid"): float(c.get("data-value")) for chart in charts for c in chart.iter(f"{ns}circle")}
    first, second = world["evals"]
    assert points[f"eval-point-{first.id}-golden-ndcg@10"] == pytest.approx(0.5)
    assert points[f"eval-point-{second.id}-golden-ndcg@10"] == pytest.approx(0.6)
    assert f"eval-point-{first.id}-golden-recall@100" in points
    assert not any("queries" in k or "by_source" in k for k in points)
    markers = {g.get("data-testid") for chart in charts for g in chart.iter(f"{ns}g") if g.get("class") == "marker"}
    assert f"promotion-{world['coll2'].id}" in markers and f"promotion-{world['model2'].id}" in markers


# -- actions ----------------------------------------------------------------------------------------
def post_action(client, headers, path, fields, *, csrf_from="/collections/RagDocs", **extra):
    page = client.get(csrf_from, headers=headers).text
    return client.post(path, data={"csrf_token": csrf_of(page), **fields}, headers={**headers, **extra})


def test_collection_rollback_triggers_the_dag_as_the_user(client, tokens, world, api):
    headers = as_user(tokens, "user")
    response = post_action(client, headers, "/actions/collection-rollback", {"artifact_id": world["coll1"].id},
                           **{"Sec-Fetch-Site": "same-origin", "Origin": "http://airflow.test"})
    assert response.status_code == 200, response.text
    [sent] = api.requests
    assert sent["dag_id"] == "rag_collection_rollback"
    assert sent["body"]["conf"] == {"alias": "RagDocs", "version": world["coll1"].version}
    assert sent["token"] == tokens["user"] and sent["user"] == "user-person"  # the user's own token
    assert text_of(response.text, "triggered-run") == "manual__1"
    assert 'href="/dags/rag_collection_rollback/runs/manual__1"' in response.text


def test_model_rollback_reindex_and_evaluate_post_their_dags(client, tokens, world, api):
    headers = as_user(tokens, "user")
    assert post_action(client, headers, "/actions/model-rollback", {"artifact_id": world["base"].id}).status_code == 200
    assert post_action(client, headers, "/actions/reindex", {"alias": "RagDocs"}).status_code == 200
    assert post_action(client, headers, "/actions/evaluate", {"alias": "RagDocs"}).status_code == 200
    rollback, reindex, evaluate = api.requests
    assert rollback["dag_id"] == "rag_model_rollback" and rollback["body"]["conf"]["to_version"] == world["base"].version
    assert "user-person" in rollback["body"]["conf"]["reason"]
    # Re-indexed from the sources the live version was built from.
    assert reindex["dag_id"] == "rag_index"
    assert reindex["body"]["conf"] == {"alias": "RagDocs", "sources": world["corpus2"].params["sources"]}
    assert evaluate["dag_id"] == "rag_evaluate" and evaluate["body"]["conf"] == {"alias": "RagDocs"}


def test_a_viewer_may_not_act(client, tokens, world, api):
    response = post_action(client, as_user(tokens, "viewer"), "/actions/collection-rollback",
                           {"artifact_id": world["coll1"].id})
    assert response.status_code == 403 and "may not trigger rag_collection_rollback" in response.text
    assert api.requests == []  # refused before anything was forwarded
    assert client.post("/actions/collection-rollback", data={"artifact_id": world["coll1"].id}).status_code == 401
    no_role = client.post("/actions/collection-rollback", data={"artifact_id": world["coll1"].id},
                          headers=as_user(tokens, "no_role"))
    assert no_role.status_code == 403 and api.requests == []


@pytest.mark.parametrize("forged", [{"csrf": "0" * 64}, {"Sec-Fetch-Site": "cross-site"},
                                    {"Origin": "https://evil.example"}])
def test_cross_site_forms_are_refused(client, tokens, world, api, forged):
    headers = as_user(tokens, "user")
    csrf = forged.pop("csrf", None) or csrf_of(client.get("/collections/RagDocs", headers=headers).text)
    response = client.post("/actions/collection-rollback", data={"csrf_token": csrf, "artifact_id": world["coll1"].id},
                           headers={**headers, **forged})
    assert response.status_code == 403 and api.requests == []


def test_invalid_actions_are_refused_with_reasons(client, tokens, world, api):
    headers = as_user(tokens, "user")
    failed = post_action(client, headers, "/actions/collection-rollback", {"artifact_id": world["coll3"].id})
    assert failed.status_code == 400 and "cannot go live" in failed.text
    production = post_action(client, headers, "/actions/model-rollback", {"artifact_id": world["model2"].id})
    assert production.status_code == 400 and "not an archived version" in production.text
    assert api.requests == []


def test_the_cookie_session_works_like_the_header(client, tokens, world, api):
    client.cookies.set("_token", tokens["user"])
    html = client.get("/collections/RagDocs").text
    response = client.post("/actions/collection-rollback",
                           data={"csrf_token": csrf_of(html), "artifact_id": world["coll1"].id})
    assert response.status_code == 200 and api.requests[0]["token"] == tokens["user"]


# -- registration -----------------------------------------------------------------------------------
def test_plugin_registers_the_protected_app_and_its_links():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    spec = importlib.util.spec_from_file_location("ragops_control_plane_plugin", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.RagopsControlPlanePlugin
    [app] = plugin.fastapi_apps
    assert app["url_prefix"] == CONTROL_PLANE_PREFIX and isinstance(app["app"], FastAPI)
    registered = TestClient(app["app"])
    assert registered.get("/").status_code == 401 and registered.get("/openapi.json").status_code == 404
    views = {v["destination"]: v for v in plugin.external_views}
    assert views["nav"]["name"] == "RAG control plane" and views["nav"]["href"] == f"{CONTROL_PLANE_PREFIX}/"
    assert views["dag"]["href"] == f"{CONTROL_PLANE_PREFIX}/runs?dag_id={{DAG_ID}}"
