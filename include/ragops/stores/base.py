"""The vector store interface, shaped after Weaviate's collections and aliases.

Readers query an alias; writers fill a new versioned collection and swap the alias only after
the gate passes (blue/green). Object ids are deterministic (``ragops.hashing.chunk_object_id``),
so an upsert of the same chunk twice leaves one object.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

# Names valid in both Weaviate (capitalised GraphQL class names) and LanceDB.
COLLECTION_NAME = re.compile(r"^[A-Z][A-Za-z0-9_]{0,120}$")

# The properties every chunk object carries. Stores keep exactly these, typed.
CHUNK_PROPERTIES: dict[str, type] = {
    "chunk_id": str,        # deterministic object id (uuid5 of doc id, position, content hash)
    "doc_id": str,
    "doc_hash": str,
    "source": str,          # where the document came from (path relative to the source root, or BEIR id)
    "title": str,           # the chunk title: its nearest heading, or the document title
    "heading_path": str,    # " > "-joined headings from the document root to this chunk
    "position": int,        # index of the chunk inside its document
    "text": str,
    "content_hash": str,    # sha256 of the chunk text (and heading path)
    "token_count": int,
}


class VectorStoreError(RuntimeError):
    """A store operation failed; the message names the collection or alias involved."""


class CollectionNotFound(VectorStoreError):
    pass


@dataclass
class VectorObject:
    id: str
    properties: dict[str, Any]
    vector: Sequence[float] | None = None


@dataclass
class SearchHit:
    id: str
    score: float
    properties: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class VectorStore(Protocol):
    backend: str  # "lancedb" or "weaviate": recorded in lineage

    # collections -------------------------------------------------------------------------
    def create_collection(self, name: str, dimension: int, metadata: dict[str, Any] | None = None) -> None:
        """Creates an empty collection. Idempotent when it exists with the same dimension; a
        different dimension raises VectorStoreError."""

    def collection_exists(self, name: str) -> bool: ...
    def collection_metadata(self, name: str) -> dict[str, Any]:
        """The metadata given at creation, plus ``dimension``."""

    def list_collections(self, prefix: str | None = None) -> list[str]: ...
    def delete_collection(self, name: str) -> None:
        """Deletes a collection; refuses (VectorStoreError) while an alias points at it."""

    # objects -----------------------------------------------------------------------------
    def upsert(self, name: str, objects: Sequence[VectorObject]) -> int:
        """Inserts or replaces objects by id; every object needs a vector. Returns the count written."""

    def count(self, name: str) -> int: ...
    def fetch(self, name: str, ids: Sequence[str], include_vectors: bool = True) -> list[VectorObject]: ...
    def iter_objects(self, name: str, include_vectors: bool = False, batch_size: int = 1000) -> Iterator[VectorObject]: ...
    def copy_objects(self, source: str, target: str, ids: Sequence[str]) -> int:
        """Copies objects with their vectors from one collection version to another, by id."""

    def delete_objects(self, name: str, ids: Sequence[str]) -> int: ...

    # queries -----------------------------------------------------------------------------
    def vector_search(self, name: str, vector: Sequence[float], k: int = 10) -> list[SearchHit]:
        """Cosine similarity; higher score is better. ``name`` may be an alias."""

    def keyword_search(self, name: str, query: str, k: int = 10) -> list[SearchHit]:
        """BM25 over ``title`` and ``text``."""

    def hybrid_search(self, name: str, query: str, vector: Sequence[float], k: int = 10,
                      alpha: float = 0.5) -> list[SearchHit]:
        """Fusion of vector and keyword results (alpha=1: pure vector, 0: pure keyword)."""

    # aliases -----------------------------------------------------------------------------
    def get_alias(self, alias: str) -> str | None: ...
    def set_alias(self, alias: str, collection: str) -> str | None:
        """Creates the alias or atomically repoints it; returns the previous target."""

    def delete_alias(self, alias: str) -> None: ...
    def list_aliases(self) -> dict[str, str]: ...


def check_collection_name(name: str) -> str:
    if not COLLECTION_NAME.match(name):
        raise VectorStoreError(
            f"collection or alias name {name!r} is invalid: it must start with an upper-case letter "
            "and hold only letters, digits and underscores (Weaviate's rule)")
    return name
