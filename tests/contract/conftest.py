"""Stores under contract: the embedded LanceDB store always, Weaviate when WEAVIATE_URL names a live server.

Every test gets a fresh store (``store``), a factory for a second handle on the same data
(``open_store_again``: another process or task opening the store), and a unique collection name
prefix (``prefix``) so that runs against a shared Weaviate never collide; whatever a test
created under its prefix is removed afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from ragops.stores import VectorStore

NO_WEAVIATE = "WEAVIATE_URL is not set: the Weaviate contract run needs a live Weaviate >= 1.32"


@dataclass(frozen=True)
class StoreSpec:
    """Enough to open the same store again, also from another process (see the concurrency test)."""

    backend: str
    location: str
    grpc_port: int | None = None
    api_key: str | None = None

    def open(self) -> VectorStore:
        if self.backend == "lancedb":
            from ragops.stores.lancedb_store import LanceDBStore

            return LanceDBStore(self.location)
        from ragops.stores.weaviate_store import WeaviateStore

        return WeaviateStore(self.location, grpc_port=self.grpc_port, api_key=self.api_key)


@pytest.fixture(params=["lancedb", pytest.param("weaviate", marks=pytest.mark.weaviate)])
def store_spec(request, tmp_path) -> StoreSpec:
    if request.param == "lancedb":
        return StoreSpec("lancedb", str(tmp_path / "vectors"))
    url = os.environ.get("WEAVIATE_URL")
    if not url:
        pytest.skip(NO_WEAVIATE)
    grpc = os.environ.get("WEAVIATE_GRPC_PORT")
    return StoreSpec("weaviate", url, int(grpc) if grpc else None, os.environ.get("WEAVIATE_API_KEY") or None)


@pytest.fixture
def prefix() -> str:
    """A collection/alias name prefix unique to this test (valid under Weaviate's naming rule)."""
    return f"Ct{uuid.uuid4().hex[:10]}_"


@pytest.fixture
def store(store_spec, prefix) -> Iterator[VectorStore]:
    handle = store_spec.open()
    try:
        yield handle
    finally:
        _remove_everything_under(handle, prefix)
        close = getattr(handle, "close", None)
        if close:
            close()


@pytest.fixture
def open_store_again(store_spec) -> Iterator[Callable[[], VectorStore]]:
    opened: list[VectorStore] = []

    def factory() -> VectorStore:
        opened.append(store_spec.open())
        return opened[-1]

    yield factory
    for handle in opened:
        close = getattr(handle, "close", None)
        if close:
            close()


def _remove_everything_under(store: VectorStore, prefix: str) -> None:
    for alias, target in store.list_aliases().items():
        if alias.startswith(prefix) or target.startswith(prefix):
            store.delete_alias(alias)
    for name in store.list_collections(prefix=prefix):
        store.delete_collection(name)
