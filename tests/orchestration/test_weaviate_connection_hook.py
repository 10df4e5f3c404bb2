"""The Weaviate provider's connection reaches the same endpoints through our mapping as through its hook."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest


@pytest.mark.parametrize("conn", [
    {"conn_type": "weaviate", "host": "weaviate.internal", "port": 8080, "extra": {"grpc_port": 50051}},
    {"conn_type": "weaviate", "host": "cluster.weaviate.cloud", "port": 443,
     "extra": {"http_secure": True, "grpc_secure": True, "grpc_host": "grpc-cluster.weaviate.cloud",
               "api_key": "k", "additional_headers": {"X-Cohere-Api-Key": "c"}}},
    {"conn_type": "weaviate", "host": "w", "extra": {"token": "k"}},
])
def test_the_mapping_reaches_the_endpoints_the_provider_hook_does(conn, monkeypatch):
    """Same connection, same endpoints: WeaviateHook.get_conn's connect_to_custom arguments, captured."""
    import weaviate
    from airflow.providers.weaviate.hooks.weaviate import WeaviateHook

    from ragops.stores.weaviate_store import weaviate_settings_from_connection

    captured: dict = {}
    monkeypatch.setattr(weaviate, "connect_to_custom", lambda **kwargs: captured.update(kwargs))
    monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_WEAVIATE_T", json.dumps(conn))
    WeaviateHook("ragops_weaviate_t").get_conn()
    ours = weaviate_settings_from_connection(conn["host"], conn.get("port"), None, conn["extra"])
    url = urlsplit(ours["url"])
    assert (url.hostname, url.port, url.scheme == "https") == (
        captured["http_host"], captured["http_port"], captured["http_secure"])
    assert (ours["grpc_host"], ours["grpc_port"], ours["grpc_secure"]) == (
        captured["grpc_host"], int(captured["grpc_port"]), captured["grpc_secure"])
    assert (ours["headers"] or {}) == captured["headers"]
    # without a key the hook falls back to OIDC login/password (empty here); ours sends no credentials
    assert ours["api_key"] == getattr(captured["auth_credentials"], "api_key", None)
