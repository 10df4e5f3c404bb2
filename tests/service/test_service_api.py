"""The service's API through FastAPI's TestClient: auth, bad requests, search, cited answers,
health, readiness, the OpenAPI schema and the Prometheus metrics."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from ragops.serving import ServiceSettings, create_app
from ragops.synthetic.llm import ChatClient, LLMSettings
from tests.llm_server import LLMTestServer, Reply
from tests.service.conftest import API_KEY
from tests.service.corpus import SOURCE

AUTH = {"Authorization": f"Bearer {API_KEY}"}
LLM_KEY = "sk-llm-test-0123456789"
QUESTION = "how do I restore a backup to a point in time"


@pytest.fixture(scope="module")
def client(indexed):
    app = create_app(indexed.svc, ServiceSettings(api_key=API_KEY, collection=indexed.alias, refresh_s=0.2),
                     llm_problem="no ragops_llm endpoint is configured (test)", warm=False)
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def llm_client(indexed):
    with LLMTestServer(api_key=LLM_KEY) as server:
        chat = ChatClient(LLMSettings(base_url=server.base_url, api_key=LLM_KEY, model="test-model", max_attempts=1))
        app = create_app(indexed.svc, ServiceSettings(api_key=API_KEY, collection=indexed.alias), llm=chat, warm=False)
        with TestClient(app) as c:
            yield c, server
        chat.close()


# -- auth ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key-0123456789abcdef"},
                                     {"Authorization": f"Basic {API_KEY}"}, {"Authorization": "Bearer"}])
@pytest.mark.parametrize("path", ["/v1/search", "/v1/answer"])
def test_no_key_or_a_wrong_key_gets_401(client, headers, path):
    response = client.post(path, json={"query": QUESTION}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert API_KEY not in response.text
    # a bad body without a key is still a 401: nothing is validated for an anonymous caller
    assert client.post(path, json={"k": 0}, headers=headers).status_code == 401


def test_health_readiness_schema_and_metrics_need_no_key(client, indexed):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready" and body["version"]["collection"] == indexed.versions[0]
    assert body["answers"].startswith("extractive")
    schema = client.get("/openapi.json").json()
    assert {"/v1/search", "/v1/answer", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    search_body = schema["components"]["schemas"]["SearchRequest"]["properties"]
    assert search_body["k"]["maximum"] == 50 and search_body["query"]["maxLength"] == 1000

    assert client.post("/v1/search", json={"query": QUESTION, "k": 2}, headers=AUTH).status_code == 200
    assert client.post("/v1/search", json={"query": ""}, headers=AUTH).status_code == 422
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert re.search(r'ragops_requests_total\{endpoint="/v1/search",method="POST",status="200"\} [1-9]', text)
    assert re.search(r'ragops_request_errors_total\{endpoint="/v1/search",kind="422"\} [1-9]', text)
    for stage in ("encode", "first_stage", "finish"):
        assert re.search(rf'ragops_stage_seconds_count\{{stage="{stage}"\}} [1-9]', text), stage
    assert f'ragops_served_version{{collection="{indexed.versions[0]}",name="Docs"}} 1.0' in text


# -- bad requests ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "field"), [
    ({}, "query"),
    ({"query": ""}, "query"),
    ({"query": "   \n "}, "query"),
    ({"query": "x" * 1001}, "query"),
    ({"query": 42}, "query"),
    ({"query": "backup", "k": 0}, "k"),
    ({"query": "backup", "k": 51}, "k"),
    ({"query": "backup", "k": "many"}, "k"),
    ({"query": "backup", "mode": "fuzzy"}, "mode"),
    ({"query": "backup", "rerank_top_n": 0}, "rerank_top_n"),
    ({"query": "backup", "colour": "red"}, "colour"),
    ({"query": "backup", "collection": "not a name"}, "collection"),
    ({"query": "backup", "sources": "fx"}, "sources"),
])
def test_bad_search_requests_get_422_naming_the_field(client, body, field):
    response = client.post("/v1/search", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["detail"][0]["field"] == field
    assert payload["error"].startswith(f"{field}: ")


def test_bad_answer_requests_and_bodies_that_are_not_json(client):
    response = client.post("/v1/answer", json={"question": " "}, headers=AUTH)
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "question"
    response = client.post("/v1/answer", json={"question": "ok", "k": 99}, headers=AUTH)
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "k"
    response = client.post("/v1/search", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 422 and "JSON" in response.json()["error"]


def test_an_unknown_collection_is_a_404_naming_it(client):
    for path, key in (("/v1/search", "query"), ("/v1/answer", "question")):
        response = client.post(path, json={key: QUESTION, "collection": "Nope"}, headers=AUTH)
        assert response.status_code == 404
        assert response.json() == {"error": "collection: no alias or collection named 'Nope'", "field": "collection"}


# -- search ------------------------------------------------------------------------------------------
def test_search_returns_hits_with_their_citations(client, indexed):
    response = client.post("/v1/search", json={"query": QUESTION, "k": 3, "mode": "hybrid"}, headers=AUTH)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["version"]["collection"] == indexed.versions[0] and result["version"]["version"] == 1
    assert result["fusion"] == {"method": "rrf", "alpha": 0.5, "rrf_k": 60} and result["reranker"] is None
    hits = result["hits"]
    assert len(hits) == 3 and hits[0]["citation"]["doc_id"] == f"{SOURCE}:operations/backup.md"
    for hit in hits:
        c = hit["citation"]
        assert c["chunk_id"] == hit["chunk_id"] and c["source"] == SOURCE
        assert c["location"].endswith(c["doc_id"].split(":", 1)[1])
        assert 0 <= c["char_start"] < c["char_end"] and c["heading_path"].startswith(c["title"])
        assert set(hit["scores"]) >= {"dense", "fused"}
    for mode in ("dense", "keyword"):
        one = client.post("/v1/search", json={"query": QUESTION, "k": 1, "mode": mode, "rerank": True},
                          headers=AUTH).json()
        assert one["mode"] == mode and one["reranker"] == "identity" and len(one["hits"]) == 1
    assert client.post("/v1/search", json={"query": QUESTION, "sources": ["elsewhere"]}, headers=AUTH).json()["hits"] == []


# -- answers -----------------------------------------------------------------------------------------
CITE = re.compile(r"\[(\d+)\]")


def assert_citations_point_at_passages(answer: dict) -> None:
    passages = {p["n"]: p for p in answer["passages"]}
    cited = [int(n) for n in CITE.findall(answer["answer"])]
    assert cited, answer["answer"]
    assert set(cited) <= set(passages)                                  # every [n] is a passage given
    assert [c["n"] for c in answer["citations"]] == list(dict.fromkeys(cited))
    for citation in answer["citations"]:                                 # ... and maps to its hit's citation
        passage = passages[citation["n"]]
        assert citation["chunk_id"] == passage["chunk_id"] == passage["citation"]["chunk_id"]
        assert citation["location"] == passage["citation"]["location"]
        assert citation["char_start"] == passage["citation"]["char_start"]


def test_answer_without_an_llm_is_extractive_and_cited(client):
    response = client.post("/v1/answer", json={"question": QUESTION, "k": 3}, headers=AUTH)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["kind"] == "extractive" and answer["fallback"]["using"] == "extractive answer"
    assert "no ragops_llm endpoint" in answer["fallback"]["reason"]
    assert len(answer["passages"]) == 3 and answer["best_similarity"] > 0.3
    assert_citations_point_at_passages(answer)
    assert "answer" in answer["timings"] and answer["version"]["name"] == "Docs"


def test_answer_from_the_llm_cites_only_passages_that_were_retrieved(llm_client):
    client, server = llm_client
    response = client.post("/v1/answer", json={"query": QUESTION, "k": 4}, headers=AUTH)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["kind"] == "generated" and answer["fallback"] is None and answer["model"] == "test-model"
    assert answer["prompt_version"].startswith("answer.v1@") and answer["usage"]["prompt_tokens"] > 0
    assert_citations_point_at_passages(answer)
    prompt = server.requests[-1]["messages"][1]["content"]
    for passage in answer["passages"]:
        assert f"[{passage['n']}] {passage['citation']['heading_path']}" in prompt

    server.enqueue(Reply(content=json.dumps({"answer": "Restore the snapshot [2]. Then replay WAL [1][7]. See [12]."})))
    answer = client.post("/v1/answer", json={"question": QUESTION, "k": 4}, headers=AUTH).json()
    assert answer["answer"] == "Restore the snapshot [2]. Then replay WAL [1]. See."
    assert answer["removed_citations"] == [7, 12] and [c["n"] for c in answer["citations"]] == [2, 1]
    assert_citations_point_at_passages(answer)


def test_a_question_the_collection_does_not_cover_gets_i_dont_know(llm_client):
    client, server = llm_client
    calls = server.calls
    answer = client.post("/v1/answer", json={"question": "a recipe for chocolate cake with strawberries",
                                             "mode": "dense"}, headers=AUTH).json()
    assert answer["kind"] == "unknown" and answer["citations"] == [] and "don't know" in answer["answer"]
    assert server.calls == calls   # no LLM call for it
