"""The production vector store: Weaviate (>= 1.32, for collection aliases) through weaviate-client v4.

Collections hold self-provided vectors (no vectorizer) in one HNSW index with cosine distance, and
the CHUNK_PROPERTIES as typed properties. The metadata given at creation, plus the dimension, is
kept as JSON in the collection's description (Weaviate has no other free-form collection field).
Objects keep their deterministic ids as Weaviate uuids, so a batch re-import overwrites, never
duplicates. Readers query an alias, which Weaviate resolves server-side.

What a real server (1.35, tests/contract) showed that a REST double did not: ``GET /v1/schema/{name}``
resolves an alias to its target class, so ``collections.exists(alias)`` is True and a collection
check must compare the returned class name with the name asked (``_target_of``); object ids must be
UUIDs (the client refuses anything else before it reaches the server).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypedDict
from urllib.parse import urlsplit

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

MIN_SERVER_VERSION = (1, 32)  # collection aliases (client.alias) arrived in Weaviate 1.32
DEFAULT_GRPC_PORT = 50051
KEYWORD_PROPERTIES = ["title", "text"]
DESCRIPTION_KEY = "ragops"
INSERT_BATCH = 500
ID_BATCH = 1000
FUSIONS = ("client", "server")
SERVER_FUSION_TYPES = ("ranked", "relative_score")
_VERSION = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?")


def check_server_version(version: str, url: str = "the Weaviate server") -> tuple[int, int, int]:
    """Parses the version /v1/meta reports and refuses servers without collection aliases."""
    match = _VERSION.match(version or "")
    if not match:
        raise VectorStoreError(f"{url} reports an unreadable version {version!r}; ragops needs Weaviate >= 1.32")
    parsed = (int(match[1]), int(match[2]), int(match[3] or 0))
    if parsed[:2] < MIN_SERVER_VERSION:
        raise VectorStoreError(
            f"{url} runs Weaviate {version}, but ragops needs Weaviate >= 1.32 "
            "(collection aliases, used for the blue/green swap)")
    return parsed


def encode_description(dimension: int, metadata: dict[str, Any] | None) -> str:
    return json.dumps({DESCRIPTION_KEY: {"dimension": dimension, "metadata": metadata or {}}}, sort_keys=True)


def decode_description(name: str, description: str | None) -> dict[str, Any]:
    """The metadata given at creation plus ``dimension``, from a collection description."""
    try:
        payload = json.loads(description or "")[DESCRIPTION_KEY]
    except (ValueError, KeyError, TypeError) as exc:
        raise VectorStoreError(
            f"collection {name!r} was not created by ragops: its description holds no ragops metadata") from exc
    return {**payload.get("metadata", {}), "dimension": int(payload["dimension"])}


class WeaviateSettings(TypedDict):
    """The keyword arguments of ``WeaviateStore(...)`` that a connection determines."""

    url: str
    grpc_host: str
    grpc_port: int
    grpc_secure: bool
    api_key: str | None
    headers: dict[str, str] | None


def _flag(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if value is None or value == "":
        return False
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise VectorStoreError(f"Weaviate connection extra {field!r} must be a boolean, got {value!r}")


def weaviate_settings_from_connection(host: str | None, port: int | str | None = None,
                                      password: str | None = None, extra: Mapping[str, Any] | None = None,
                                      *, login: str | None = None, schema: str | None = None) -> WeaviateSettings:
    """Maps an Airflow connection of the Weaviate provider's ``weaviate`` type to WeaviateStore's
    arguments: ``WeaviateStore(**weaviate_settings_from_connection(c.host, c.port, c.password,
    c.extra_dejson, login=c.login, schema=c.schema))``. Pure: imports no Airflow.

    The same endpoints as the provider's ``WeaviateHook.get_conn`` for the same connection:
    ``host`` (a bare host name, or a URL whose scheme and port are used), ``port`` (default 443
    with ``http_secure``, else 80), extra ``http_secure``, ``grpc_host`` (default: the HTTP host),
    ``grpc_port`` (default 443 with ``grpc_secure``, else 80, as in the hook: set it, Weaviate
    listens on 50051), ``grpc_secure`` (default false), ``additional_headers``. The API key is extra
    ``api_key`` or ``token`` (the hook's names); without them ``password`` is taken as the API key
    (ragops' ``http`` connection convention), unless ``login`` is set too: the hook reads
    login + password as OIDC credentials, which this store does not speak. OIDC-only extras
    (``access_token``, ``client_secret``) are refused by name for the same reason.
    """
    extra = dict(extra or {})
    raw = (host or "").strip()
    if not raw:
        raise VectorStoreError("the Weaviate connection has no host")
    parts = urlsplit(raw if "://" in raw else f"//{raw}")
    scheme = (parts.scheme or (schema or "").strip().lower() or None)
    if scheme not in (None, "http", "https"):
        raise VectorStoreError(f"the Weaviate connection's host {raw!r} has scheme {scheme!r}: use http or https")
    if not parts.hostname:
        raise VectorStoreError(f"the Weaviate connection's host {raw!r} names no host")
    http_secure = _flag(extra["http_secure"], "http_secure") if "http_secure" in extra else scheme == "https"
    try:
        http_port = int(port) if port not in (None, "") else (parts.port or (443 if http_secure else 80))
        grpc_secure = _flag(extra.get("grpc_secure"), "grpc_secure")
        grpc_port = int(extra["grpc_port"]) if extra.get("grpc_port") not in (None, "") else (
            443 if grpc_secure else 80)
    except (TypeError, ValueError) as exc:
        raise VectorStoreError(f"the Weaviate connection has a port that is not a number: {exc}") from exc
    for oidc in ("access_token", "client_secret"):
        if extra.get(oidc):
            raise VectorStoreError(
                f"the Weaviate connection sets extra {oidc!r} (OIDC): ragops connects with an API key only; "
                "set extra 'api_key'")
    api_key = extra.get("api_key") or extra.get("token") or None
    if api_key is None and password:
        if login:
            raise VectorStoreError(
                "the Weaviate connection has login and password, which the Weaviate provider reads as OIDC "
                "credentials: ragops connects with an API key only; put it in extra 'api_key' (or in the "
                "password, with no login)")
        api_key = password
    host_name = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    headers = extra.get("additional_headers") or None
    return WeaviateSettings(
        url=f"{'https' if http_secure else 'http'}://{host_name}:{http_port}",
        grpc_host=str(extra.get("grpc_host") or parts.hostname),
        grpc_port=grpc_port,
        grpc_secure=grpc_secure,
        api_key=str(api_key) if api_key else None,
        headers={str(k): str(v) for k, v in dict(headers).items()} if headers else None,
    )


def _uuid_or_none(value: str) -> str | None:
    """The canonical form of a UUID string, or None: Weaviate object ids are UUIDs."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


class WeaviateStore:
    """VectorStore on a Weaviate server (v4 client: REST for schema and aliases, gRPC for data)."""

    backend = "weaviate"

    def __init__(self, url: str, grpc_port: int | None = None, api_key: str | None = None, *,
                 grpc_host: str | None = None, grpc_secure: bool | None = None,
                 headers: Mapping[str, str] | None = None, skip_init_checks: bool = False):
        """``grpc_secure`` defaults to the URL's scheme (https: TLS); ``headers`` go with every
        request (e.g. a vectorizer module's key; the connection's ``additional_headers``)."""
        import weaviate
        from weaviate.classes.init import Auth

        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise VectorStoreError(f"WEAVIATE_URL {url!r} is not an http(s)://host[:port] URL")
        secure = parts.scheme == "https"
        try:
            client = weaviate.connect_to_custom(
                http_host=parts.hostname, http_port=parts.port or (443 if secure else 80), http_secure=secure,
                grpc_host=grpc_host or parts.hostname, grpc_port=grpc_port or DEFAULT_GRPC_PORT,
                grpc_secure=secure if grpc_secure is None else grpc_secure,
                headers=dict(headers) if headers else None,
                auth_credentials=Auth.api_key(api_key) if api_key else None,
                skip_init_checks=skip_init_checks,
            )
        except Exception as exc:
            raise VectorStoreError(f"could not connect to Weaviate at {url}: {exc}") from exc
        self._init(client, url=url, owns_client=True)

    @classmethod
    def from_client(cls, client: Any, *, owns_client: bool = False) -> WeaviateStore:
        """Wraps a connected ``weaviate.WeaviateClient`` (e.g. built from an Airflow connection)."""
        store = cls.__new__(cls)
        store._init(client, url=getattr(client._connection, "url", "the Weaviate server"), owns_client=owns_client)
        return store

    def _init(self, client: Any, *, url: str, owns_client: bool) -> None:
        self.client = client
        self.url = url
        self._owns_client = owns_client
        try:
            version = str(client.get_meta()["version"])
            self.server_version = check_server_version(version, url)
        except Exception:
            if owns_client:
                client.close()
            raise

    def __repr__(self) -> str:
        return f"WeaviateStore({self.url!r})"

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> WeaviateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # collections -------------------------------------------------------------------------
    def create_collection(self, name: str, dimension: int, metadata: dict[str, Any] | None = None) -> None:
        from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances

        check_collection_name(name)
        if not isinstance(dimension, int) or dimension <= 0:
            raise VectorStoreError(f"collection {name!r}: dimension must be a positive integer, got {dimension!r}")
        target = self._target_of(name)
        if target == name:
            existing = self.collection_metadata(name)["dimension"]
            if existing != dimension:
                raise VectorStoreError(
                    f"collection {name!r} exists with dimension {existing}, not the requested {dimension}")
            return
        if target is not None or self.get_alias(name) is not None:
            raise VectorStoreError(f"cannot create collection {name!r}: an alias with that name exists")
        types = {str: DataType.TEXT, int: DataType.INT, float: DataType.NUMBER, bool: DataType.BOOL}
        properties = [
            Property(name=prop, data_type=types[kind],
                     # ids and hashes match whole (filters), only title and text feed BM25
                     tokenization=(Tokenization.WORD if prop in KEYWORD_PROPERTIES else Tokenization.FIELD)
                     if kind is str else None,
                     index_searchable=prop in KEYWORD_PROPERTIES if kind is str else None)
            for prop, kind in CHUNK_PROPERTIES.items()
        ]
        try:
            self.client.collections.create(
                name,
                description=encode_description(dimension, metadata),
                properties=properties,
                vector_config=Configure.Vectors.self_provided(
                    vector_index_config=Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE)),
            )
        except Exception as exc:
            if self._target_of(name) is not None:  # created concurrently (or an alias): check it as above
                self.create_collection(name, dimension, metadata)
                return
            raise VectorStoreError(f"could not create collection {name!r}: {exc}") from exc
        log.info("created Weaviate collection %s (dimension %d)", name, dimension)

    def collection_exists(self, name: str) -> bool:
        """True for a collection, False for an alias (as in the embedded store) or nothing."""
        check_collection_name(name)
        return self._target_of(name) == name

    def collection_metadata(self, name: str) -> dict[str, Any]:
        config = self._config(name)
        if config is None:
            raise CollectionNotFound(f"collection {name!r} does not exist (neither a collection nor an alias)")
        return decode_description(config.name, config.description)

    def list_collections(self, prefix: str | None = None) -> list[str]:
        names = self.client.collections.list_all(simple=True)
        return sorted(n for n in names if prefix is None or n.startswith(prefix))

    def delete_collection(self, name: str) -> None:
        check_collection_name(name)
        pointing = sorted(a for a, target in self.list_aliases().items() if target == name)
        if pointing:
            raise VectorStoreError(f"cannot delete collection {name!r}: alias(es) {', '.join(pointing)} point at it")
        self.client.collections.delete(name)

    # objects -----------------------------------------------------------------------------
    def upsert(self, name: str, objects: Sequence[VectorObject]) -> int:
        from weaviate.classes.data import DataObject

        if not objects:
            return 0
        collection = self._collection(name)
        dimension = self.collection_metadata(name)["dimension"]
        unique = list({obj.id: obj for obj in objects}.values())
        for start in range(0, len(unique), INSERT_BATCH):
            batch = unique[start:start + INSERT_BATCH]
            data = []
            for obj in batch:
                unknown = set(obj.properties) - set(CHUNK_PROPERTIES)
                if unknown:
                    raise VectorStoreError(
                        f"collection {name!r}: object {obj.id!r} has unknown properties {sorted(unknown)}")
                if obj.vector is None or len(obj.vector) != dimension:
                    raise VectorStoreError(
                        f"collection {name!r}: object {obj.id!r} needs a vector of dimension {dimension}")
                if _uuid_or_none(obj.id) is None:
                    raise VectorStoreError(f"collection {name!r}: object id {obj.id!r} is not a UUID")
                properties = {k: v for k, v in obj.properties.items() if v is not None}
                data.append(DataObject(properties=properties, uuid=obj.id, vector=[float(x) for x in obj.vector]))
            result = self._call(name, collection.data.insert_many, data)
            if result.has_errors:
                first = sorted(result.errors.items())[:3]
                details = "; ".join(f"{batch[i].id}: {err.message}" for i, err in first)
                raise VectorStoreError(
                    f"collection {name!r}: {len(result.errors)} of {len(batch)} objects failed to import ({details})")
        return len(unique)

    def count(self, name: str) -> int:
        collection = self._collection(name)
        return int(self._call(name, collection.aggregate.over_all, total_count=True).total_count or 0)

    def fetch(self, name: str, ids: Sequence[str], include_vectors: bool = True) -> list[VectorObject]:
        collection = self._collection(name)
        found: dict[str, VectorObject] = {}
        # an id that is not a UUID names no Weaviate object (and the client refuses to send it)
        unique = [i for i in dict.fromkeys(_uuid_or_none(i) for i in ids) if i is not None]
        if not unique:
            self._resolve(name)  # still: a missing collection is an error, not an empty answer
        for start in range(0, len(unique), ID_BATCH):
            batch = unique[start:start + ID_BATCH]
            result = self._call(name, collection.query.fetch_objects_by_ids, batch,
                                limit=len(batch), include_vector=include_vectors)
            for obj in result.objects:
                vo = self._to_object(obj, include_vectors)
                found[vo.id] = vo
        return [found[key] for key in (_uuid_or_none(i) for i in ids) if key in found]

    def iter_objects(self, name: str, include_vectors: bool = False, batch_size: int = 1000) -> Iterator[VectorObject]:
        collection = self._collection(name)
        for obj in collection.iterator(include_vector=include_vectors, cache_size=batch_size):
            yield self._to_object(obj, include_vectors)

    def copy_objects(self, source: str, target: str, ids: Sequence[str]) -> int:
        source_dim = self.collection_metadata(source)["dimension"]
        target_dim = self.collection_metadata(target)["dimension"]
        if source_dim != target_dim:
            raise VectorStoreError(
                f"cannot copy from collection {source!r} (dimension {source_dim}) to {target!r} (dimension {target_dim})")
        copied = 0
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), ID_BATCH):
            copied += self.upsert(target, self.fetch(source, unique[start:start + ID_BATCH], include_vectors=True))
        return copied

    def delete_objects(self, name: str, ids: Sequence[str]) -> int:
        from weaviate.classes.query import Filter

        collection = self._collection(name)
        deleted = 0
        unique = [i for i in dict.fromkeys(_uuid_or_none(i) for i in ids) if i is not None]
        if not unique:
            self._resolve(name)
        for start in range(0, len(unique), ID_BATCH):
            batch = unique[start:start + ID_BATCH]
            result = self._call(name, collection.data.delete_many, where=Filter.by_id().contains_any(batch))
            if result.failed:
                raise VectorStoreError(f"collection {name!r}: {result.failed} objects failed to delete")
            deleted += int(result.successful)
        return deleted

    # queries -----------------------------------------------------------------------------
    def vector_search(self, name: str, vector: Sequence[float], k: int = 10) -> list[SearchHit]:
        from weaviate.classes.query import MetadataQuery

        collection = self._collection(name)
        result = self._call(name, collection.query.near_vector, near_vector=[float(x) for x in vector],
                            limit=k, return_metadata=MetadataQuery(distance=True))
        # cosine distance is 1 - cosine similarity: report the similarity (higher is better)
        return [SearchHit(id=str(o.uuid), score=1.0 - float(o.metadata.distance), properties=self._properties(o))
                for o in result.objects]

    def keyword_search(self, name: str, query: str, k: int = 10) -> list[SearchHit]:
        from weaviate.classes.query import MetadataQuery

        collection = self._collection(name)
        result = self._call(name, collection.query.bm25, query=query, query_properties=KEYWORD_PROPERTIES,
                            limit=k, return_metadata=MetadataQuery(score=True))
        return [SearchHit(id=str(o.uuid), score=float(o.metadata.score), properties=self._properties(o))
                for o in result.objects]

    def hybrid_search(self, name: str, query: str, vector: Sequence[float], k: int = 10,
                      alpha: float = 0.5, *, fusion: str = "client",
                      fusion_type: str = "ranked") -> list[SearchHit]:
        """Vector and BM25 results fused (alpha=1: pure vector, 0: pure keyword).

        ``fusion="client"`` (default): ragops' weighted reciprocal rank fusion (``ragops.stores.fusion``)
        of the vector and BM25 top lists, each ``max(3k, 30)`` deep: the embedded store's rule
        exactly, so scores and rankings compare across backends. ``fusion="server"``: Weaviate's own
        hybrid query, one request, fused on the server with ``fusion_type`` "ranked" (Weaviate's
        rankedFusion: weight / (60 + 0-based rank)) or "relative_score" (relativeScoreFusion:
        min-max normalised scores, Weaviate's default).
        """
        from weaviate.classes.query import HybridFusion, MetadataQuery

        if not 0.0 <= alpha <= 1.0:
            raise VectorStoreError(f"collection {name!r}: hybrid alpha must lie in [0, 1], got {alpha}")
        if fusion not in FUSIONS:
            raise VectorStoreError(f"collection {name!r}: hybrid fusion {fusion!r} is not one of {FUSIONS}")
        if fusion_type not in SERVER_FUSION_TYPES:
            raise VectorStoreError(
                f"collection {name!r}: hybrid fusion_type {fusion_type!r} is not one of {SERVER_FUSION_TYPES}")
        if fusion == "client":
            depth = max(3 * k, 30)
            vector_hits = self.vector_search(name, vector, k=depth) if alpha > 0.0 else []
            keyword_hits = self.keyword_search(name, query, k=depth) if alpha < 1.0 else []
            return reciprocal_rank_fusion(vector_hits, keyword_hits, alpha=alpha, k=k)
        collection = self._collection(name)
        result = self._call(name, collection.query.hybrid, query=query, vector=[float(x) for x in vector],
                            alpha=alpha, query_properties=KEYWORD_PROPERTIES, limit=k,
                            fusion_type=HybridFusion.RANKED if fusion_type == "ranked" else HybridFusion.RELATIVE_SCORE,
                            return_metadata=MetadataQuery(score=True))
        return [SearchHit(id=str(o.uuid), score=float(o.metadata.score), properties=self._properties(o))
                for o in result.objects]

    def ensure_search_index(self, name: str) -> None:
        """Weaviate keeps its inverted and vector indexes current on write: nothing to do."""
        self._resolve(name)

    # aliases -----------------------------------------------------------------------------
    def get_alias(self, alias: str) -> str | None:
        check_collection_name(alias)
        found = self.client.alias.get(alias_name=alias)
        return None if found is None else found.collection

    def set_alias(self, alias: str, collection: str) -> str | None:
        check_collection_name(alias)
        check_collection_name(collection)
        if self._target_of(alias) == alias:
            raise VectorStoreError(f"cannot create alias {alias!r}: a collection with that name exists")
        if self._target_of(collection) != collection:  # nothing, or an alias: aliases point at collections
            raise CollectionNotFound(
                f"cannot point alias {alias!r} at collection {collection!r}: the collection does not exist")
        previous = self.get_alias(alias)
        try:
            if previous is None:
                self.client.alias.create(alias_name=alias, target_collection=collection)
            elif previous != collection:
                # one PUT: the server swaps the target atomically for every reader
                self.client.alias.update(alias_name=alias, new_target_collection=collection)
        except Exception as exc:
            raise VectorStoreError(f"could not point alias {alias!r} at collection {collection!r}: {exc}") from exc
        log.info("alias %s -> %s (was %s)", alias, collection, previous)
        return previous

    def delete_alias(self, alias: str) -> None:
        check_collection_name(alias)
        self.client.alias.delete(alias_name=alias)

    def list_aliases(self) -> dict[str, str]:
        return {name: found.collection for name, found in sorted(self.client.alias.list_all().items())}

    # internals ---------------------------------------------------------------------------
    def _config(self, name: str) -> Any:
        """The class config behind ``name`` (one GET /v1/schema/{name}, which the server answers
        for an alias with its target's class), or None when neither a collection nor an alias."""
        from weaviate.exceptions import UnexpectedStatusCodeError

        check_collection_name(name)
        try:
            return self.client.collections.use(name).config.get(simple=True)
        except UnexpectedStatusCodeError as exc:
            if exc.status_code == 404:
                return None
            raise VectorStoreError(f"collection {name!r}: {exc}") from exc

    def _target_of(self, name: str) -> str | None:
        """``name`` for a collection, its target for an alias, None for neither."""
        config = self._config(name)
        return None if config is None else config.name

    def _resolve(self, name: str) -> str:
        target = self._target_of(name)
        if target is None:
            raise CollectionNotFound(f"collection {name!r} does not exist (neither a collection nor an alias)")
        return target

    def _collection(self, name: str) -> Any:
        # Weaviate resolves an alias name itself; a missing name surfaces on the first call (_call).
        check_collection_name(name)
        return self.client.collections.use(name)

    def _call(self, name: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        from weaviate.exceptions import WeaviateBaseError

        try:
            return method(*args, **kwargs)
        except WeaviateBaseError as exc:
            if self._target_of(name) is None:
                raise CollectionNotFound(f"collection {name!r} does not exist") from exc
            raise VectorStoreError(f"collection {name!r}: {exc}") from exc

    @staticmethod
    def _properties(obj: Any) -> dict[str, Any]:
        props = obj.properties or {}
        return {prop: props.get(prop) for prop in CHUNK_PROPERTIES}

    def _to_object(self, obj: Any, include_vectors: bool) -> VectorObject:
        vector = None
        if include_vectors and obj.vector:
            vectors = obj.vector
            vector = vectors.get("default", next(iter(vectors.values()))) if isinstance(vectors, dict) else vectors
            vector = [float(x) for x in vector]
        return VectorObject(id=str(obj.uuid), properties=self._properties(obj), vector=vector)
