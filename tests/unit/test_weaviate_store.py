"""WeaviateStore without a Weaviate server: everything it does over REST.

A small HTTP server on 127.0.0.1 (FakeWeaviateREST) answers the REST endpoints the v4 client
calls: ``GET /v1/meta`` and the ``/v1/.well-known`` probes while connecting, ``/v1/schema`` for
collections and ``/v1/aliases`` for aliases, with Weaviate's payloads, status codes and the
defaults the server fills into a created class. The gRPC port is never served, so clients are
built with ``skip_init_checks`` (no gRPC health ping) and the data path (batch import, queries)
is left to tests/contract, which runs against a live server when WEAVIATE_URL is set.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ragops.config import RagopsSettings
from ragops.stores import CHUNK_PROPERTIES, CollectionNotFound, VectorStore, VectorStoreError, open_store
from ragops.stores.weaviate_store import (
    WeaviateStore,
    check_server_version,
    decode_description,
    encode_description,
)

# What Weaviate 1.32 fills in for a class created with only a named self-provided HNSW vector
# (the values GET /v1/schema/{class} reports for such a class).
HNSW_DEFAULTS: dict[str, Any] = {
    "skip": False, "cleanupIntervalSeconds": 300, "maxConnections": 32, "efConstruction": 128, "ef": -1,
    "dynamicEfMin": 100, "dynamicEfMax": 500, "dynamicEfFactor": 8, "vectorCacheMaxObjects": 1000000000000,
    "flatSearchCutoff": 40000, "distance": "cosine", "filterStrategy": "sweeping",
    "pq": {"enabled": False, "bitCompression": False, "segments": 0, "centroids": 256, "trainingLimit": 100000,
           "encoder": {"type": "kmeans", "distribution": "log-normal"}},
    "bq": {"enabled": False}, "sq": {"enabled": False, "trainingLimit": 100000, "rescoreLimit": 20},
    "rq": {"enabled": False, "bits": 8, "rescoreLimit": 20},
    "multivector": {"enabled": False, "aggregation": "maxSim",
                    "muvera": {"enabled": False, "ksim": 4, "dprojections": 16, "repetitions": 10}},
}
CLASS_DEFAULTS: dict[str, Any] = {
    "invertedIndexConfig": {"bm25": {"b": 0.75, "k1": 1.2}, "cleanupIntervalSeconds": 60,
                            "stopwords": {"preset": "en", "additions": None, "removals": None},
                            "usingBlockMaxWAND": True},
    "multiTenancyConfig": {"enabled": False, "autoTenantCreation": False, "autoTenantActivation": False},
    "replicationConfig": {"factor": 1, "asyncEnabled": False, "deletionStrategy": "NoAutomatedResolution"},
    "shardingConfig": {"virtualPerPhysical": 128, "desiredCount": 1, "actualCount": 1, "desiredVirtualCount": 128,
                       "actualVirtualCount": 128, "key": "_id", "strategy": "hash", "function": "murmur3"},
    "vectorizer": "none",
}


class FakeWeaviateREST(ThreadingHTTPServer):
    """Weaviate's REST surface that WeaviateStore uses outside the gRPC data path: meta,
    readiness, OIDC discovery, schema (classes) and aliases, with the server's status codes and
    error bodies. Classes and aliases share one namespace, as on the server. As a real 1.35 server
    does (checked against one, tests/contract): ``GET /v1/schema/{alias}`` answers with the alias's
    target class, ``DELETE /v1/schema/{alias}`` deletes nothing, and creating a class under an
    alias's name is refused with "alias name ... already exists"."""

    def __init__(self, version: str):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.version = version
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.classes: dict[str, dict[str, Any]] = {}
        self.aliases: dict[str, str] = {}
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def created_bodies(self) -> list[dict[str, Any]]:
        return [body for method, path, _, body in self.requests if (method, path) == ("POST", "/v1/schema")]

    def with_server_defaults(self, body: dict[str, Any]) -> dict[str, Any]:
        stored = {**copy.deepcopy(CLASS_DEFAULTS), **copy.deepcopy(body)}
        for vector in stored.get("vectorConfig", {}).values():
            vector["vectorIndexConfig"] = {**HNSW_DEFAULTS, **vector.get("vectorIndexConfig", {})}
        for prop in stored.get("properties", []):
            text = prop["dataType"] == ["text"]
            prop.setdefault("indexFilterable", True)
            prop.setdefault("indexRangeFilters", False)
            prop.setdefault("indexSearchable", text)
            if text:
                prop.setdefault("tokenization", "word")
        return stored


class _Handler(BaseHTTPRequestHandler):
    server: FakeWeaviateREST

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append((method, parts.path, {k.lower(): v for k, v in self.headers.items()}, body))
        with self.server.lock:
            status, payload = self._answer(method, parts.path, parse_qs(parts.query), body)
        self._reply(status, payload)

    def _answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        server = self.server
        classes, aliases = server.classes, server.aliases
        if (method, path) == ("GET", "/v1/meta"):
            # the shape of a real 1.3x /v1/meta answer
            return 200, {"hostname": "http://[::]:8080", "modules": {}, "version": server.version,
                         "grpcMaxMessageSize": 104858000}
        if (method, path) == ("GET", "/v1/.well-known/ready"):
            return 200, None
        if path == "/v1/schema":
            if method == "GET":
                return 200, {"classes": list(classes.values())}
            if method == "POST":
                name = body["class"]
                if name in aliases:
                    return 422, _error(f"alias name {name} already exists")
                if name in classes:
                    return 422, _error(f"class name {name!r} already exists")
                classes[name] = server.with_server_defaults(body)
                return 200, classes[name]
        if path.startswith("/v1/schema/"):
            name = path.removeprefix("/v1/schema/")
            if method == "GET":
                name = aliases.get(name, name)  # the server resolves an alias to its target class
                return (200, classes[name]) if name in classes else (404, None)
            if method == "DELETE":
                classes.pop(name, None)
                return 200, None
        if path == "/v1/aliases":
            if method == "GET":
                wanted = query.get("class", [None])[0]
                return 200, {"aliases": [{"alias": a, "class": c} for a, c in aliases.items()
                                         if wanted in (None, c)]}
            if method == "POST":
                alias, target = body["alias"], body["class"]
                if alias in aliases or alias in classes:
                    return 422, _error(f"create alias: alias {alias} already exists")
                if target not in classes:
                    return 422, _error(f"create alias: class {target} does not exist")
                aliases[alias] = target
                return 200, {"alias": alias, "class": target}
        if path.startswith("/v1/aliases/"):
            alias = path.removeprefix("/v1/aliases/")
            if alias not in aliases:
                return 404, None
            if method == "GET":
                return 200, {"alias": alias, "class": aliases[alias]}
            if method == "PUT":
                if body["class"] not in classes:
                    return 422, _error(f"replace alias: class {body['class']} does not exist")
                aliases[alias] = body["class"]
                return 200, {"alias": alias, "class": aliases[alias]}
            if method == "DELETE":
                del aliases[alias]
                return 204, None
        # includes /v1/.well-known/openid-configuration: 404 when OIDC is not configured
        return 404, _error(f"path {path} not found")

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _reply(self, status: int, body: Any) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass


def _error(message: str) -> dict[str, Any]:
    return {"error": [{"message": message}]}


def _serve(version: str) -> Iterator[FakeWeaviateREST]:
    server = FakeWeaviateREST(version)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def weaviate_1_31():
    yield from _serve("1.31.0")


@pytest.fixture
def weaviate_1_32():
    yield from _serve("1.32.4")


@pytest.fixture
def store(weaviate_1_32):
    handle = WeaviateStore(weaviate_1_32.url, grpc_port=1, skip_init_checks=True)
    yield handle
    handle.close()


def test_server_without_aliases_is_refused_with_the_version_named(weaviate_1_31):
    with pytest.raises(VectorStoreError, match=r"Weaviate 1\.31\.0.*needs Weaviate >= 1\.32"):
        WeaviateStore(weaviate_1_31.url, grpc_port=1, skip_init_checks=True)
    assert ("GET", "/v1/meta") in [(method, path) for method, path, _, _ in weaviate_1_31.requests]


def test_server_with_aliases_passes_the_check(weaviate_1_32):
    store = WeaviateStore(weaviate_1_32.url, grpc_port=1, skip_init_checks=True)
    try:
        assert store.backend == "weaviate"
        assert store.server_version == (1, 32, 4)
        assert repr(store) == f"WeaviateStore({weaviate_1_32.url!r})"
    finally:
        store.close()


def test_wrapping_an_existing_client_checks_the_version_and_leaves_it_open(weaviate_1_31, weaviate_1_32):
    import weaviate

    for server, ok in ((weaviate_1_32, True), (weaviate_1_31, False)):
        port = int(server.url.rsplit(":", 1)[1])
        client = weaviate.connect_to_custom(http_host="127.0.0.1", http_port=port, http_secure=False,
                                            grpc_host="127.0.0.1", grpc_port=1, grpc_secure=False,
                                            skip_init_checks=True)
        try:
            if ok:
                store = WeaviateStore.from_client(client)
                store.close()
                assert client.is_connected()  # not ours to close
                assert store.server_version == (1, 32, 4)
            else:
                with pytest.raises(VectorStoreError, match=r"1\.31\.0"):
                    WeaviateStore.from_client(client)
        finally:
            client.close()


def test_api_key_travels_as_bearer_header_and_stays_out_of_repr(weaviate_1_32):
    secret = "s3cr3t-key-value"
    store = WeaviateStore(weaviate_1_32.url, grpc_port=1, api_key=secret, skip_init_checks=True)
    try:
        meta_headers = [headers for _, path, headers, _ in weaviate_1_32.requests if path == "/v1/meta"]
        assert meta_headers and meta_headers[-1]["authorization"] == f"Bearer {secret}"
        assert secret not in repr(store)
    finally:
        store.close()


def test_open_store_builds_the_weaviate_backend_from_settings(weaviate_1_31):
    settings = RagopsSettings(pg_dsn="postgresql://unused", vector_backend="weaviate",
                              weaviate_url=weaviate_1_31.url, weaviate_grpc_port=1)
    # the factory reaches the server: the old version is refused by name
    with pytest.raises(VectorStoreError, match=r"1\.31\.0"):
        open_store(settings)


def test_unreachable_server_error_names_the_url():
    url = "http://127.0.0.1:9"  # discard port: nothing listens
    with pytest.raises(VectorStoreError, match=r"could not connect to Weaviate at http://127\.0\.0\.1:9"):
        WeaviateStore(url, grpc_port=1, skip_init_checks=True)


@pytest.mark.parametrize("url", ["localhost:8080", "ftp://host:21", "", "http://"])
def test_malformed_url_is_named(url):
    with pytest.raises(VectorStoreError, match="is not an http"):
        WeaviateStore(url)


@pytest.mark.parametrize(("version", "ok"), [
    ("1.32.0", True), ("1.32.12", True), ("1.33.0-rc.1", True), ("2.0.0", True),
    ("1.31.9", False), ("1.27.0", False), ("garbage", False), ("", False),
])
def test_version_rule(version, ok):
    if ok:
        assert check_server_version(version)[:2] >= (1, 32)
    else:
        with pytest.raises(VectorStoreError, match="needs Weaviate >= 1.32"):
            check_server_version(version)


def test_collection_description_round_trips_metadata_and_dimension():
    text = encode_description(384, {"model": "all-MiniLM-L6-v2", "snapshot": "abc"})
    assert decode_description("Docs_v1", text) == {"model": "all-MiniLM-L6-v2", "snapshot": "abc", "dimension": 384}
    with pytest.raises(VectorStoreError, match="'Foreign' was not created by ragops"):
        decode_description("Foreign", "a collection made by hand")


def test_unknown_backend_is_named(tmp_path):
    settings = RagopsSettings(pg_dsn="postgresql://unused", vector_backend="milvus", vector_dir=str(tmp_path))
    with pytest.raises(VectorStoreError, match="'milvus'"):
        open_store(settings)


# schema and aliases over REST --------------------------------------------------------------
def test_the_store_implements_the_protocol(store):
    assert isinstance(store, VectorStore)


def test_create_collection_sends_a_self_provided_cosine_schema(store, weaviate_1_32):
    store.create_collection("Docs_v1", 384, {"snapshot": "abc", "model": "minilm"})
    [body] = weaviate_1_32.created_bodies()
    assert body["class"] == "Docs_v1"
    [(vector_name, vector)] = body["vectorConfig"].items()
    assert vector["vectorizer"] == {"none": {}}  # vectors come from ragops, never from a module
    assert vector["vectorIndexType"] == "hnsw"
    assert vector["vectorIndexConfig"]["distance"] == "cosine"
    types = {prop["name"]: prop["dataType"] for prop in body["properties"]}
    assert types == {name: ["int"] if kind is int else ["text"] for name, kind in CHUNK_PROPERTIES.items()}
    searchable = {prop["name"] for prop in body["properties"] if prop.get("indexSearchable")}
    assert searchable == {"title", "text"}
    assert decode_description("Docs_v1", body["description"]) == {"snapshot": "abc", "model": "minilm",
                                                                  "dimension": 384}
    # read back through the client's own parsing of the stored class
    assert store.collection_metadata("Docs_v1") == {"snapshot": "abc", "model": "minilm", "dimension": 384}
    assert store.collection_exists("Docs_v1")
    assert vector_name == "default"


def test_create_is_idempotent_and_refuses_another_dimension(store, weaviate_1_32):
    store.create_collection("Docs_v1", 384)
    store.create_collection("Docs_v1", 384)
    assert len(weaviate_1_32.created_bodies()) == 1
    with pytest.raises(VectorStoreError, match=r"'Docs_v1' exists with dimension 384, not the requested 768"):
        store.create_collection("Docs_v1", 768)


def test_list_and_delete_collections_by_prefix(store):
    for name in ("Docs_v1", "Docs_v2", "Other_v1"):
        store.create_collection(name, 8)
    assert store.list_collections(prefix="Docs_") == ["Docs_v1", "Docs_v2"]
    store.delete_collection("Docs_v1")
    store.delete_collection("Docs_v1")  # already gone: a no-op
    assert store.list_collections() == ["Docs_v2", "Other_v1"]


def test_alias_create_then_repoint_in_one_request(store, weaviate_1_32):
    store.create_collection("Docs_v1", 8)
    store.create_collection("Docs_v2", 8, {"snapshot": "green"})
    assert store.set_alias("RagDocs", "Docs_v1") is None
    assert store.set_alias("RagDocs", "Docs_v2") == "Docs_v1"
    alias_writes = [(method, path, body) for method, path, _, body in weaviate_1_32.requests
                    if path.startswith("/v1/aliases") and method != "GET"]
    assert alias_writes == [("POST", "/v1/aliases", {"class": "Docs_v1", "alias": "RagDocs"}),
                            ("PUT", "/v1/aliases/RagDocs", {"class": "Docs_v2"})]
    assert store.get_alias("RagDocs") == "Docs_v2"
    assert store.list_aliases() == {"RagDocs": "Docs_v2"}
    assert store.collection_metadata("RagDocs") == {"snapshot": "green", "dimension": 8}
    store.delete_alias("RagDocs")
    store.delete_alias("RagDocs")  # already gone: a no-op
    assert store.get_alias("RagDocs") is None


def test_delete_is_refused_while_aliased(store, weaviate_1_32):
    store.create_collection("Docs_v1", 8)
    store.set_alias("RagDocs", "Docs_v1")
    with pytest.raises(VectorStoreError, match=r"cannot delete collection 'Docs_v1': alias\(es\) RagDocs"):
        store.delete_collection("Docs_v1")
    assert ("DELETE", "/v1/schema/Docs_v1") not in [(m, p) for m, p, _, _ in weaviate_1_32.requests]
    assert store.collection_exists("Docs_v1")


def test_aliases_and_collections_share_one_namespace(store):
    store.create_collection("Docs_v1", 8)
    store.create_collection("Docs_v2", 8)
    with pytest.raises(VectorStoreError, match="'Docs_v1': a collection with that name exists"):
        store.set_alias("Docs_v1", "Docs_v2")
    store.set_alias("RagDocs", "Docs_v1")
    with pytest.raises(VectorStoreError, match="'RagDocs': an alias with that name exists"):
        store.create_collection("RagDocs", 8)


def test_missing_collections_are_named(store):
    with pytest.raises(CollectionNotFound, match="collection 'Nowhere'"):
        store.collection_metadata("Nowhere")
    with pytest.raises(CollectionNotFound, match="'Nowhere'"):
        store.set_alias("RagDocs", "Nowhere")
    with pytest.raises(VectorStoreError, match="'lower' is invalid"):
        store.create_collection("lower", 8)


def test_a_foreign_collection_is_refused_by_name(store, weaviate_1_32):
    weaviate_1_32.classes["Handmade"] = weaviate_1_32.with_server_defaults({"class": "Handmade"})
    with pytest.raises(VectorStoreError, match="'Handmade' was not created by ragops"):
        store.collection_metadata("Handmade")


def test_an_alias_is_not_a_collection(store):
    store.create_collection("Docs_v1", 8)
    store.set_alias("RagDocs", "Docs_v1")
    assert store.collection_exists("Docs_v1")
    assert not store.collection_exists("RagDocs")  # although GET /v1/schema/RagDocs answers (with Docs_v1)
    assert store.collection_metadata("RagDocs")["dimension"] == 8
    with pytest.raises(CollectionNotFound, match="'RagDocs'"):
        store.set_alias("Other", "RagDocs")  # an alias points at a collection, never at an alias


# the Airflow Weaviate provider's connection -------------------------------------------------
@pytest.mark.parametrize(("conn", "expected"), [
    # the provider's own shape: bare host, port, extras
    ({"host": "weaviate.internal", "port": 8080, "extra": {"grpc_port": 50051, "api_key": "k1"}},
     {"url": "http://weaviate.internal:8080", "grpc_host": "weaviate.internal", "grpc_port": 50051,
      "grpc_secure": False, "api_key": "k1", "headers": None}),
    # TLS on both, a separate gRPC host, the key under its old name, extra headers
    ({"host": "cluster.weaviate.cloud", "extra": {"http_secure": True, "grpc_secure": "true", "token": "k2",
                                                   "grpc_host": "grpc-cluster.weaviate.cloud",
                                                   "additional_headers": {"X-OpenAI-Api-Key": "o"}}},
     {"url": "https://cluster.weaviate.cloud:443", "grpc_host": "grpc-cluster.weaviate.cloud", "grpc_port": 443,
      "grpc_secure": True, "api_key": "k2", "headers": {"X-OpenAI-Api-Key": "o"}}),
    # ragops' README convention: host = URL, password = API key; gRPC port defaults as in the hook
    ({"host": "https://w.example:8443", "password": "k3", "extra": {"grpc_port": "50052"}},
     {"url": "https://w.example:8443", "grpc_host": "w.example", "grpc_port": 50052,
      "grpc_secure": False, "api_key": "k3", "headers": None}),
    ({"host": "w", "schema": "https", "port": "9443", "extra": {}},
     {"url": "https://w:9443", "grpc_host": "w", "grpc_port": 80, "grpc_secure": False, "api_key": None,
      "headers": None}),
    # an explicit extra api_key wins over the password
    ({"host": "w", "port": 80, "password": "p", "login": "someone", "extra": {"api_key": "k4"}},
     {"url": "http://w:80", "grpc_host": "w", "grpc_port": 80, "grpc_secure": False, "api_key": "k4",
      "headers": None}),
])
def test_weaviate_settings_from_connection(conn, expected):
    from ragops.stores.weaviate_store import weaviate_settings_from_connection

    settings = weaviate_settings_from_connection(conn["host"], conn.get("port"), conn.get("password"),
                                                 conn.get("extra"), login=conn.get("login"),
                                                 schema=conn.get("schema"))
    assert settings == expected


@pytest.mark.parametrize(("conn", "message"), [
    ({"host": ""}, "has no host"),
    ({"host": "ftp://w"}, "scheme 'ftp'"),
    ({"host": "w", "extra": {"grpc_port": "fifty"}}, "not a number"),
    ({"host": "w", "extra": {"http_secure": "maybe"}}, "'http_secure' must be a boolean"),
    ({"host": "w", "login": "alice", "password": "pw"}, "OIDC"),
    ({"host": "w", "extra": {"access_token": "t"}}, "'access_token'"),
    ({"host": "w", "extra": {"client_secret": "s"}}, "'client_secret'"),
])
def test_weaviate_connection_errors_are_named(conn, message):
    from ragops.stores.weaviate_store import weaviate_settings_from_connection

    with pytest.raises(VectorStoreError, match=message):
        weaviate_settings_from_connection(conn["host"], conn.get("port"), conn.get("password"), conn.get("extra"),
                                          login=conn.get("login"))


def test_the_mapping_imports_no_airflow():
    import subprocess
    import sys

    code = ("import sys; from ragops.stores.weaviate_store import weaviate_settings_from_connection as f; "
            "f('w', 8080, None, {}); assert not [m for m in sys.modules if m.split('.')[0] == 'airflow'], 'airflow'")
    subprocess.run([sys.executable, "-c", code], check=True)
