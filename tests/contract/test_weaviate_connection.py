"""An Airflow ``weaviate`` connection (the provider's type) reaches the real server, both ways:
through ``weaviate_settings_from_connection`` into WeaviateStore, and through the provider's
WeaviateHook client wrapped by ``WeaviateStore.from_client``. The connection travels as
AIRFLOW_CONN_<ID> (JSON), as in a deployment's secrets backend."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from test_vector_store_contract import DIM, filled

from ragops.stores.weaviate_store import WeaviateStore, weaviate_settings_from_connection

pytestmark = pytest.mark.weaviate


@pytest.fixture
def weaviate_connection(weaviate_spec, monkeypatch) -> dict:
    url = urlsplit(weaviate_spec.location)
    conn = {"conn_type": "weaviate", "host": url.hostname, "port": url.port,
            "extra": {"grpc_port": weaviate_spec.grpc_port or 50051, "http_secure": False, "grpc_secure": False,
                      **({"api_key": weaviate_spec.api_key} if weaviate_spec.api_key else {})}}
    monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_WEAVIATE_CONTRACT", json.dumps(conn))
    return conn


def test_the_connection_mapping_opens_the_store(weaviate_connection, prefix):
    from airflow.sdk import Connection

    conn = Connection.get("ragops_weaviate_contract")
    settings = weaviate_settings_from_connection(conn.host, conn.port, conn.password, conn.extra_dejson,
                                                 login=conn.login, schema=conn.schema)
    with WeaviateStore(**settings) as store:
        assert store.server_version >= (1, 32, 0)
        filled(store, f"{prefix}Docs_v1", 3)
        try:
            assert store.count(f"{prefix}Docs_v1") == 3
        finally:
            store.delete_collection(f"{prefix}Docs_v1")


def test_the_provider_hook_client_drives_the_store(weaviate_connection, prefix):
    from airflow.providers.weaviate.hooks.weaviate import WeaviateHook

    client = WeaviateHook("ragops_weaviate_contract").get_conn()
    try:
        store = WeaviateStore.from_client(client)
        store.create_collection(f"{prefix}Docs_v1", DIM)
        try:
            assert store.collection_metadata(f"{prefix}Docs_v1") == {"dimension": DIM}
        finally:
            store.delete_collection(f"{prefix}Docs_v1")
        store.close()
        assert client.is_connected()  # the hook's client stays the hook's
    finally:
        client.close()
