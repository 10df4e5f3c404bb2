"""The embedded vector store: LanceDB tables on local disk, with Weaviate's collection and alias semantics.

Layout under ``directory``:

* one Lance table per collection (``<Name>.lance``): the CHUNK_PROPERTIES columns, ``id``, a
  ``search_text`` column (title + newline + text, the full-text index's input) and ``vector``
  (fixed-size float32 list of the collection's dimension). The metadata given at creation and the
  dimension live in the table's schema metadata, so they are written in the same commit as the table.
* ``_ragops_aliases.json``: the alias map ``{alias: collection}``, rewritten whole through a temp
  file and ``os.replace`` under ``_ragops_aliases.lock`` (a file lock), so concurrent writers in
  several processes never lose an update and readers never see a half-written map.

Writers in several processes (Airflow mapped tasks) may upsert different ids into one collection at
once: Lance commits optimistically, and a commit that loses the race is retried (tenacity) against
the new table version, so no write is lost.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
from filelock import FileLock
from lancedb.index import FTS
from tenacity import before_sleep_log, retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from ragops.stores.base import (
    CHUNK_PROPERTIES,
    CollectionNotFound,
    SearchHit,
    VectorObject,
    VectorStoreError,
    check_collection_name,
)
from ragops.stores.fusion import reciprocal_rank_fusion

log = logging.getLogger(__name__)

ALIAS_FILE = "_ragops_aliases.json"
ALIAS_LOCK = "_ragops_aliases.lock"
METADATA_KEY = b"ragops.metadata"
DIMENSION_KEY = b"ragops.dimension"
SEARCH_TEXT = "search_text"
FTS_INDEX = "search_text_fts"
# Candidates taken from each list before fusion: deeper than k so that a hit ranked modestly by
# both retrievers can still rise into the fused top k.
HYBRID_DEPTH_FACTOR = 3
HYBRID_MIN_DEPTH = 30
# Rows per merge_insert commit: bounds memory and the work redone when a commit conflict retries.
WRITE_BATCH = 5000
# Ids per ``id IN (...)`` filter.
ID_BATCH = 1000

_ARROW_TYPES = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
# e.g. "Retryable commit conflict for version 12: This Rewrite transaction was preempted by concurrent ..."
_CONFLICT = re.compile(r"retryable|commit conflict|preempted|concurrent transaction", re.IGNORECASE)


def _is_commit_conflict(exc: BaseException) -> bool:
    """Lance reports a lost optimistic-commit race as a plain OSError/RuntimeError whose text says so."""
    return isinstance(exc, OSError | RuntimeError | ValueError) and not isinstance(exc, VectorStoreError) \
        and bool(_CONFLICT.search(str(exc)))


_retry_on_conflict = retry(
    retry=retry_if_exception(_is_commit_conflict),
    stop=stop_after_attempt(12),
    wait=wait_random_exponential(multiplier=0.05, max=3),
    before_sleep=before_sleep_log(log, logging.WARNING),
    reraise=True,
)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _id_filter(ids: Sequence[str]) -> str:
    return f"id IN ({', '.join(_quote(str(i)) for i in ids)})"


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def chunk_schema(dimension: int, metadata: dict[str, Any] | None = None) -> pa.Schema:
    fields = [pa.field("id", pa.string(), nullable=False)]
    fields += [pa.field(prop, _ARROW_TYPES[kind]) for prop, kind in CHUNK_PROPERTIES.items()]
    fields += [pa.field(SEARCH_TEXT, pa.string()),
               pa.field("vector", pa.list_(pa.float32(), dimension))]
    return pa.schema(fields, metadata={
        METADATA_KEY: json.dumps(metadata or {}, sort_keys=True).encode(),
        DIMENSION_KEY: str(dimension).encode(),
    })


class LanceDBStore:
    """VectorStore on an on-disk LanceDB database (see the module docstring for the layout)."""

    backend = "lancedb"

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # interval 0: every read checks for commits made by other processes (strong consistency),
        # so a reader never serves a stale version after a writer elsewhere has committed.
        self._db = lancedb.connect(str(self.directory), read_consistency_interval=timedelta(0))
        self._alias_path = self.directory / ALIAS_FILE
        self._alias_lock = FileLock(str(self.directory / ALIAS_LOCK), timeout=60)
        # table uri -> table version whose full-text index is known to be complete
        self._fts_fresh: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"LanceDBStore({str(self.directory)!r})"

    def close(self) -> None:
        """Nothing to release: LanceDB holds no server connection."""

    # collections -------------------------------------------------------------------------
    def create_collection(self, name: str, dimension: int, metadata: dict[str, Any] | None = None) -> None:
        check_collection_name(name)
        if not isinstance(dimension, int) or dimension <= 0:
            raise VectorStoreError(f"collection {name!r}: dimension must be a positive integer, got {dimension!r}")
        # under the alias lock: a concurrent set_alias cannot claim the name in between
        with self._alias_lock:
            if name in self._read_aliases():
                raise VectorStoreError(f"cannot create collection {name!r}: an alias with that name exists")
            created = None
            if not self._table_exists(name):
                try:
                    created = self._db.create_table(name, schema=chunk_schema(dimension, metadata))
                except (OSError, RuntimeError, ValueError) as exc:
                    if "already exists" not in str(exc).lower():
                        raise VectorStoreError(f"could not create collection {name!r}: {exc}") from exc
                    # another process created it first: fall through to the dimension check
        if created is not None:
            self._create_fts_index(created)
            log.info("created collection %s (dimension %d)", name, dimension)
            return
        existing = self.collection_metadata(name)["dimension"]
        if existing != dimension:
            raise VectorStoreError(
                f"collection {name!r} exists with dimension {existing}, not the requested {dimension}")

    def collection_exists(self, name: str) -> bool:
        check_collection_name(name)
        return self._table_exists(name)

    def collection_metadata(self, name: str) -> dict[str, Any]:
        table = self._open(self._resolve(name), asked=name)
        meta = table.schema.metadata or {}
        metadata = json.loads(meta.get(METADATA_KEY, b"{}"))
        metadata["dimension"] = int(meta[DIMENSION_KEY]) if DIMENSION_KEY in meta else \
            table.schema.field("vector").type.list_size
        return metadata

    def list_collections(self, prefix: str | None = None) -> list[str]:
        names = self._table_names()
        return sorted(n for n in names if prefix is None or n.startswith(prefix))

    def delete_collection(self, name: str) -> None:
        check_collection_name(name)
        with self._alias_lock:
            pointing = sorted(a for a, target in self._read_aliases().items() if target == name)
            if pointing:
                raise VectorStoreError(
                    f"cannot delete collection {name!r}: alias(es) {', '.join(pointing)} point at it")
            if not self._table_exists(name):
                return
            self._db.drop_table(name)
        self._fts_fresh = {uri: v for uri, v in self._fts_fresh.items() if f"/{name}.lance" not in uri}
        log.info("deleted collection %s", name)

    # objects -----------------------------------------------------------------------------
    def upsert(self, name: str, objects: Sequence[VectorObject]) -> int:
        if not objects:
            return 0
        target = self._resolve(name)
        table = self._open(target, asked=name)
        dimension = table.schema.field("vector").type.list_size
        # the last object wins when an id repeats inside one call (merge_insert needs unique keys)
        unique = list({obj.id: obj for obj in objects}.values())
        for batch in _chunks(unique, WRITE_BATCH):
            data = self._to_arrow(target, batch, dimension, table.schema)
            self._merge(table, data)
        return len(unique)

    def count(self, name: str) -> int:
        target = self._resolve(name)
        return int(self._open(target, asked=name).count_rows())

    def fetch(self, name: str, ids: Sequence[str], include_vectors: bool = True) -> list[VectorObject]:
        target = self._resolve(name)
        table = self._open(target, asked=name)
        columns = self._columns(include_vectors)
        found: dict[str, VectorObject] = {}
        for batch in _chunks(list(dict.fromkeys(ids)), ID_BATCH):
            rows = table.search().where(_id_filter(batch)).select(columns).limit(len(batch)).to_arrow()
            for row in rows.to_pylist():
                obj = self._to_object(row)
                found[obj.id] = obj
        return [found[i] for i in ids if i in found]

    def iter_objects(self, name: str, include_vectors: bool = False, batch_size: int = 1000) -> Iterator[VectorObject]:
        target = self._resolve(name)
        table = self._open(target, asked=name)
        reader = table.search().select(self._columns(include_vectors)).to_batches(batch_size)
        for record_batch in reader:
            for row in record_batch.to_pylist():
                yield self._to_object(row)

    def copy_objects(self, source: str, target: str, ids: Sequence[str]) -> int:
        source_dim = self.collection_metadata(self._resolve(source))["dimension"]
        target_dim = self.collection_metadata(self._resolve(target))["dimension"]
        if source_dim != target_dim:
            raise VectorStoreError(
                f"cannot copy from collection {source!r} (dimension {source_dim}) "
                f"to {target!r} (dimension {target_dim})")
        copied = 0
        for batch in _chunks(list(dict.fromkeys(ids)), ID_BATCH):
            copied += self.upsert(target, self.fetch(source, batch, include_vectors=True))
        return copied

    def delete_objects(self, name: str, ids: Sequence[str]) -> int:
        target = self._resolve(name)
        table = self._open(target, asked=name)
        deleted = 0
        for batch in _chunks(list(dict.fromkeys(ids)), ID_BATCH):
            where = _id_filter(batch)
            present = table.count_rows(where)
            if present:
                _retry_on_conflict(table.delete)(where)
                deleted += present
        return deleted

    # queries -----------------------------------------------------------------------------
    def vector_search(self, name: str, vector: Sequence[float], k: int = 10) -> list[SearchHit]:
        target = self._resolve(name)
        table = self._open(target, asked=name)
        query = np.asarray(vector, dtype=np.float32)
        dimension = table.schema.field("vector").type.list_size
        if query.shape != (dimension,):
            raise VectorStoreError(
                f"collection {name!r}: query vector has shape {query.shape}, expected ({dimension},)")
        rows = (table.search(query, vector_column_name="vector").distance_type("cosine")
                .select([*self._columns(False), "_distance"]).limit(k).to_arrow().to_pylist())
        # cosine distance is 1 - cosine similarity: report the similarity (higher is better)
        return [SearchHit(id=row["id"], score=1.0 - float(row.pop("_distance")),
                          properties=self._properties(row)) for row in rows]

    def keyword_search(self, name: str, query: str, k: int = 10) -> list[SearchHit]:
        target = self._resolve(name)
        table = self._open(target, asked=name)
        if not query.strip():
            return []
        self._refresh_fts(table)
        rows = (table.search(query, query_type="fts", fts_columns=SEARCH_TEXT)
                .select([*self._columns(False), "_score"]).limit(k).to_arrow().to_pylist())
        return [SearchHit(id=row["id"], score=float(row.pop("_score")), properties=self._properties(row))
                for row in rows]

    def hybrid_search(self, name: str, query: str, vector: Sequence[float], k: int = 10,
                      alpha: float = 0.5) -> list[SearchHit]:
        """Weighted reciprocal rank fusion (k=60) of the vector and BM25 top lists
        (``ragops.stores.fusion``): each list is searched ``max(3k, 30)`` deep, a hit scores
        ``alpha / (60 + vector rank) + (1 - alpha) / (60 + keyword rank)``, the top ``k`` return.
        alpha=1 is pure vector search, alpha=0 pure keyword search (the other list is not queried).
        """
        if not 0.0 <= alpha <= 1.0:
            raise VectorStoreError(f"collection {name!r}: hybrid alpha must lie in [0, 1], got {alpha}")
        depth = max(HYBRID_DEPTH_FACTOR * k, HYBRID_MIN_DEPTH)
        vector_hits = self.vector_search(name, vector, depth) if alpha > 0 else []
        keyword_hits = self.keyword_search(name, query, depth) if alpha < 1 else []
        return reciprocal_rank_fusion(vector_hits, keyword_hits, alpha=alpha, k=k)

    def ensure_search_index(self, name: str) -> None:
        """Brings the full-text index up to date now (queries otherwise do it lazily on first use)."""
        target = self._resolve(name)
        self._refresh_fts_once(self._open(target, asked=name))

    # aliases -----------------------------------------------------------------------------
    def get_alias(self, alias: str) -> str | None:
        check_collection_name(alias)
        return self._read_aliases().get(alias)

    def set_alias(self, alias: str, collection: str) -> str | None:
        check_collection_name(alias)
        check_collection_name(collection)
        with self._alias_lock:
            if self._table_exists(alias):
                raise VectorStoreError(f"cannot create alias {alias!r}: a collection with that name exists")
            if not self._table_exists(collection):
                raise CollectionNotFound(
                    f"cannot point alias {alias!r} at collection {collection!r}: the collection does not exist")
            aliases = self._read_aliases()
            previous = aliases.get(alias)
            aliases[alias] = collection
            self._write_aliases(aliases)
        log.info("alias %s -> %s (was %s)", alias, collection, previous)
        return previous

    def delete_alias(self, alias: str) -> None:
        check_collection_name(alias)
        with self._alias_lock:
            aliases = self._read_aliases()
            if aliases.pop(alias, None) is not None:
                self._write_aliases(aliases)

    def list_aliases(self) -> dict[str, str]:
        return dict(sorted(self._read_aliases().items()))

    # internals ---------------------------------------------------------------------------
    def _table_names(self) -> list[str]:
        names: list[str] = []
        page_token = None
        while True:
            response = self._db.list_tables(page_token=page_token)
            names.extend(response.tables)
            page_token = response.page_token
            if not page_token:
                return names

    def _table_exists(self, name: str) -> bool:
        return (self.directory / f"{name}.lance").is_dir() and name in self._table_names()

    def _resolve(self, name: str) -> str:
        """The collection behind ``name``: itself, or the target when ``name`` is an alias."""
        check_collection_name(name)
        return self._read_aliases().get(name, name)

    def _open(self, collection: str, asked: str | None = None) -> Any:
        try:
            return self._db.open_table(collection)
        except (OSError, RuntimeError, ValueError) as exc:
            via = f" (the target of alias {asked!r})" if asked and asked != collection else ""
            if not self._table_exists(collection):
                raise CollectionNotFound(f"collection {collection!r}{via} does not exist") from exc
            raise VectorStoreError(f"could not open collection {collection!r}{via}: {exc}") from exc

    def _read_aliases(self) -> dict[str, str]:
        try:
            return json.loads(self._alias_path.read_text())
        except FileNotFoundError:
            return {}

    def _write_aliases(self, aliases: dict[str, str]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".aliases-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(dict(sorted(aliases.items())), handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._alias_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @_retry_on_conflict
    def _merge(self, table: Any, data: pa.Table) -> None:
        (table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all()
         .execute(data))

    @_retry_on_conflict
    def _create_fts_index(self, table: Any) -> None:
        # English stemming and stop words, lower-cased, accents folded: BM25 as Weaviate's
        # default "word" tokenisation would rank it.
        table.create_index(SEARCH_TEXT, config=FTS(), name=FTS_INDEX, replace=True)

    def _refresh_fts(self, table: Any) -> None:
        """Keeps the BM25 index complete: rows written since the last build are folded in
        (Lance would otherwise scan them unindexed, with different term statistics).

        Best effort: if the refresh keeps failing (say, a read-only mount, or writers that never
        pause), the query still runs and Lance scans the unindexed rows itself.
        """
        try:
            self._refresh_fts_once(table)
        except (OSError, RuntimeError, ValueError) as exc:
            log.warning("could not refresh the full-text index of %s; searching unindexed rows too: %s",
                        table.name, exc)

    @_retry_on_conflict
    def _refresh_fts_once(self, table: Any) -> None:
        uri = table.uri
        version = table.version
        if self._fts_fresh.get(uri) == version:
            return
        if not any(index.name == FTS_INDEX for index in table.list_indices()):
            self._create_fts_index(table)
        elif table.index_stats(FTS_INDEX).num_unindexed_rows > 0:
            table.optimize()
        self._fts_fresh[uri] = table.version

    @staticmethod
    def _columns(include_vectors: bool) -> list[str]:
        return ["id", *CHUNK_PROPERTIES, *(["vector"] if include_vectors else [])]

    @staticmethod
    def _properties(row: dict[str, Any]) -> dict[str, Any]:
        return {prop: row.get(prop) for prop in CHUNK_PROPERTIES}

    def _to_object(self, row: dict[str, Any]) -> VectorObject:
        vector = row.get("vector")
        return VectorObject(id=row["id"], properties=self._properties(row),
                            vector=None if vector is None else [float(x) for x in vector])

    @staticmethod
    def _to_arrow(collection: str, objects: Sequence[VectorObject], dimension: int, schema: pa.Schema) -> pa.Table:
        columns: dict[str, list[Any]] = {"id": [], **{p: [] for p in CHUNK_PROPERTIES}, SEARCH_TEXT: []}
        vectors = np.empty((len(objects), dimension), dtype=np.float32)
        for row, obj in enumerate(objects):
            unknown = set(obj.properties) - set(CHUNK_PROPERTIES)
            if unknown:
                raise VectorStoreError(
                    f"collection {collection!r}: object {obj.id!r} has unknown properties {sorted(unknown)}")
            if obj.vector is None:
                raise VectorStoreError(f"collection {collection!r}: object {obj.id!r} has no vector")
            vector = np.asarray(obj.vector, dtype=np.float32)
            if vector.shape != (dimension,):
                raise VectorStoreError(
                    f"collection {collection!r}: object {obj.id!r} has a vector of shape {vector.shape}, "
                    f"expected ({dimension},)")
            vectors[row] = vector
            columns["id"].append(str(obj.id))
            for prop in CHUNK_PROPERTIES:
                columns[prop].append(obj.properties.get(prop))
            title = obj.properties.get("title") or ""
            text = obj.properties.get("text") or ""
            columns[SEARCH_TEXT].append(f"{title}\n{text}")
        try:
            arrays = [pa.array(columns[f.name], type=f.type) for f in schema if f.name != "vector"]
            vector_array = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dimension)
            return pa.Table.from_arrays([*arrays, vector_array], schema=schema.remove_metadata())
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise VectorStoreError(f"collection {collection!r}: objects do not fit the schema: {exc}") from exc
