"""Stores under contract: the embedded LanceDB store and a real Weaviate server, always both.

Weaviate: the server WEAVIATE_URL (WEAVIATE_GRPC_PORT, WEAVIATE_API_KEY) names, or else a local one
that scripts/services.sh builds (Go, once) and starts for the session (tests/services.py). Only
where Go is missing is the Weaviate half skipped, and then loudly (a warning and a red summary line).

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


@pytest.fixture(scope="session")
def weaviate_spec(pytestconfig) -> StoreSpec:
    """The Weaviate server of this session: WEAVIATE_URL's, or a local one started here."""
    from tests.services import ServiceUnavailable, ensure_service, skip_loudly

    env: dict[str, str] = dict(os.environ)
    if not env.get("WEAVIATE_URL"):
        try:
            env = ensure_service(pytestconfig, "weaviate")
        except ServiceUnavailable as exc:
            skip_loudly(pytestconfig, "Weaviate", str(exc), "or set WEAVIATE_URL to a running server")
    grpc = env.get("WEAVIATE_GRPC_PORT")
    return StoreSpec("weaviate", env["WEAVIATE_URL"], int(grpc) if grpc else None, env.get("WEAVIATE_API_KEY") or None)


@pytest.fixture(params=["lancedb", pytest.param("weaviate", marks=pytest.mark.weaviate)])
def store_spec(request, tmp_path) -> StoreSpec:
    if request.param == "lancedb":
        return StoreSpec("lancedb", str(tmp_path / "vectors"))
    return request.getfixturevalue("weaviate_spec")


@pytest.fixture
def weaviate_store(weaviate_spec, prefix) -> Iterator[VectorStore]:
    """A WeaviateStore on the session's server, for Weaviate-only behaviour (server-side hybrid)."""
    handle = weaviate_spec.open()
    try:
        yield handle
    finally:
        _remove_everything_under(handle, prefix)
        handle.close()


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
