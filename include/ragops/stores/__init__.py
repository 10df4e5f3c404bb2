"""Vector stores: the interface (``base``), the embedded LanceDB store and the Weaviate store.

``open_store(settings)`` picks the backend the settings name; both implement ``VectorStore``.
The store modules import their client libraries (lancedb, weaviate), so ``LanceDBStore`` and
``WeaviateStore`` are imported from here lazily, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragops.stores.base import (
    CHUNK_PROPERTIES,
    COLLECTION_NAME,
    CollectionNotFound,
    SearchHit,
    VectorObject,
    VectorStore,
    VectorStoreError,
    check_collection_name,
)

if TYPE_CHECKING:
    from ragops.config import RagopsSettings
    from ragops.stores.lancedb_store import LanceDBStore
    from ragops.stores.weaviate_store import WeaviateStore

__all__ = [
    "CHUNK_PROPERTIES",
    "COLLECTION_NAME",
    "CollectionNotFound",
    "LanceDBStore",
    "SearchHit",
    "VectorObject",
    "VectorStore",
    "VectorStoreError",
    "WeaviateStore",
    "check_collection_name",
    "open_store",
]


def open_store(settings: RagopsSettings) -> VectorStore:
    """The vector store ``settings.vector_backend`` names: "lancedb" (embedded, at
    ``settings.vector_dir``) or "weaviate" (at ``settings.weaviate_url``)."""
    backend = settings.vector_backend
    if backend == "lancedb":
        from ragops.stores.lancedb_store import LanceDBStore

        if not settings.vector_dir:
            raise VectorStoreError("vector backend 'lancedb' needs a directory (RAGOPS_VECTOR_DIR)")
        return LanceDBStore(settings.vector_dir)
    if backend == "weaviate":
        from ragops.stores.weaviate_store import WeaviateStore

        if not settings.weaviate_url:
            raise VectorStoreError("vector backend 'weaviate' needs WEAVIATE_URL")
        return WeaviateStore(settings.weaviate_url, grpc_port=settings.weaviate_grpc_port,
                             api_key=settings.weaviate_api_key, **settings.weaviate_options)
    raise VectorStoreError(f"unknown vector backend {backend!r} (RAGOPS_VECTOR_BACKEND): use 'lancedb' or 'weaviate'")


def __getattr__(name: str) -> object:
    if name == "LanceDBStore":
        from ragops.stores.lancedb_store import LanceDBStore

        return LanceDBStore
    if name == "WeaviateStore":
        from ragops.stores.weaviate_store import WeaviateStore

        return WeaviateStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
