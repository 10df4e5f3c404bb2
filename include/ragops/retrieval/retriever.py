"""The live query path: an alias followed without a restart.

A ``Retriever`` resolves its alias (or collection) at most every ``refresh_s`` seconds and builds
the ``QueryPath`` of the version it points at: that version's embedding model (its
``Relation.EMBEDDED_WITH`` parent in the lineage, loaded once per model and shared through a
``ModelPool``), its fusion (the collection artifact's ``retrieval.fusion``, re-read every
``params_refresh_s``), its reranker and its citations. A model promotion reaches readers the way
it reaches the store: ``rag_index`` re-embeds into a new version and swaps the alias.

Each query takes the path current when it starts and runs every stage on it, so a query that
started on a version finishes on it, whatever the alias does meanwhile. While a new version is
being prepared (its model loading), other queries keep being served by the previous version.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ragops.errors import InvalidInput, RagopsError
from ragops.models import ModelRef
from ragops.retrieval.citations import CitationIndex
from ragops.retrieval.fusion import DEFAULT_FUSION, fusion_of
from ragops.retrieval.hits import SearchResult, Version
from ragops.retrieval.path import QueryPath
from ragops.retrieval.rerank import IdentityReranker, Reranker
from ragops.stores.base import COLLECTION_NAME, VectorStoreError
from ragops.vocabulary import DEFAULT_ALIAS, Relation

if TYPE_CHECKING:
    from ragops.embedding import Embedder
    from ragops.services import Services

log = logging.getLogger(__name__)

REFRESH_S = 1.0            # how stale the alias may be
PARAMS_REFRESH_S = 30.0    # how stale a version's fusion and reranker may be
MODELS_KEPT = 2            # query encoders kept loaded (the live model and the one before)


class UnknownCollection(InvalidInput):
    """No alias or collection of that name: the message names it."""

    field = "collection"


class NotReady(RagopsError):
    """The collection exists but cannot serve now (its alias points at a deleted version...)."""


class ModelPool:
    """Query encoders by model content hash: each model loaded once, shared by every retriever."""

    def __init__(self, svc: Services, keep: int = MODELS_KEPT):
        self._svc = svc
        self._keep = keep
        self._encoders: OrderedDict[str, _LockedEncoder] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def of(cls, svc: Services) -> ModelPool:
        """The pool shared by every retriever over these services (kept on the services object)."""
        pool = svc.__dict__.get("_ragops_model_pool")
        if pool is None:
            pool = svc.__dict__.setdefault("_ragops_model_pool", cls(svc))
        return pool

    def encoder(self, model: ModelRef) -> _LockedEncoder:
        with self._lock:
            found = self._encoders.get(model.content_hash)
            if found is not None:
                self._encoders.move_to_end(model.content_hash)
                return found
            from ragops.embedding import Embedder

            embedder = Embedder(self._svc.model_path(model))
            _ = embedder.model  # load now, not in the first query
            encoder = _LockedEncoder(embedder, model)
            self._encoders[model.content_hash] = encoder
            while len(self._encoders) > self._keep:
                self._encoders.popitem(last=False)   # in-flight queries keep their own reference
            return encoder


class _LockedEncoder:
    """``encode`` serialised per model: a fast tokenizer must not be used by two threads at once."""

    def __init__(self, embedder: Embedder, model: ModelRef):
        self.embedder = embedder
        self.model = model
        self._lock = threading.Lock()

    def __call__(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return self.embedder.encode(texts)


RerankerFor = Callable[["Services", Version], Reranker]


def identity_reranker(svc: Services, version: Version) -> Reranker:
    return IdentityReranker()


def production_reranker(svc: Services, version: Version) -> Reranker:
    """The registry's production reranker (``ragops.reranking.registry``), else the identity reranker."""
    from ragops.reranking.registry import reranker_for

    return reranker_for(svc, version)


class Retriever:
    """The query path of whatever ``name`` (an alias, or a collection version) points at now.

    ``reranker_for(svc, version)`` gives the reranker of a version; it is asked when a version is
    first served and at every params refresh, so a reranker promoted in the registry is picked
    up without a restart (cache by artifact id inside it: it is called every ``params_refresh_s``).
    """

    def __init__(self, svc: Services, name: str = DEFAULT_ALIAS, *, refresh_s: float = REFRESH_S,
                 params_refresh_s: float = PARAMS_REFRESH_S, models: ModelPool | None = None,
                 reranker_for: RerankerFor = production_reranker, cite: bool = True):
        if not isinstance(name, str) or not COLLECTION_NAME.match(name):
            raise UnknownCollection(f"collection: {name!r} is not a collection or alias name (a capital letter, "
                                    "then letters, digits and underscores)")
        self.svc = svc
        self.name = name
        self.refresh_s = refresh_s
        self.params_refresh_s = params_refresh_s
        self.models = models or ModelPool.of(svc)
        self.reranker_for = reranker_for
        self.cite = cite
        self._path: QueryPath | None = None
        self._checked = float("-inf")
        self._params_checked = float("-inf")
        self._lock = threading.Lock()
        self.last_error: str | None = None   # why the version the alias points at is not served (if so)

    # -- queries -----------------------------------------------------------------------------
    def search(self, query: str, **options: Any) -> SearchResult:
        return self.current().search(query, **options)

    def search_many(self, queries: Sequence[str], **options: Any) -> list[SearchResult]:
        return self.current().search_many(queries, **options)

    # -- the live version --------------------------------------------------------------------
    def current(self) -> QueryPath:
        """The path of the version ``name`` points at (resolved at most every ``refresh_s``)."""
        path = self._path
        if path is not None and time.monotonic() - self._checked < self.refresh_s:
            return path
        if path is not None and not self._lock.acquire(blocking=False):
            return path   # another query is preparing the next version: serve this one meanwhile
        if path is None:
            self._lock.acquire()
        try:
            path = self._path
            now = time.monotonic()
            if path is not None and now - self._checked < self.refresh_s:
                return path
            try:
                target = self.resolve()
            except UnknownCollection:
                raise
            except Exception as exc:
                if path is None:
                    raise
                # The store blinked: the version resolved last keeps serving until it answers again.
                log.warning("could not resolve %s (still serving %s): %s", self.name, path.collection, exc)
                self._checked = time.monotonic()
                return path
            if path is None or path.collection != target:
                try:
                    path = self._build(target)
                except Exception as exc:
                    if path is None:
                        raise
                    # The old version keeps serving; the next refresh tries again.
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("could not prepare %s -> %s; still serving %s", self.name, target, path.collection)
                    self._checked = time.monotonic()
                    return path
                self.last_error = None
                self._params_checked = now
            elif now - self._params_checked >= self.params_refresh_s:
                path = self._refresh_params(path)
                self._params_checked = now
            self._path = path
            self._checked = time.monotonic()
            return path
        finally:
            self._lock.release()

    def resolve(self) -> str:
        """The collection ``name`` points at now; UnknownCollection when there is none."""
        store = self.svc.store
        target = store.get_alias(self.name)
        if target is None and store.collection_exists(self.name):
            target = self.name
        if target is None:
            raise UnknownCollection(f"collection: no alias or collection named {self.name!r}")
        return target

    def _build(self, target: str) -> QueryPath:
        svc = self.svc
        try:
            meta = svc.store.collection_metadata(target)
        except VectorStoreError as exc:
            raise NotReady(f"collection {self.name!r} points at {target!r}, which cannot be opened: {exc}") from exc
        art = svc.registry.get_artifact(int(meta["artifact_id"])) if meta.get("artifact_id") else None
        encode, problem, model = None, None, None
        model_art = svc.registry.parent(art.id, Relation.EMBEDDED_WITH) if art else None
        if model_art is not None and meta.get("model_hash") in (None, model_art.content_hash):
            model = ModelRef.of(model_art)
            encode = self.models.encoder(model)
        else:
            problem = (f"collection {target!r} records no registered embedding model (model "
                       f"{meta.get('model_id')!r}): only keyword search is possible")
            log.warning("%s", problem)
        version = Version(self.name, target, art.id if art else None, art.version if art else None,
                          model.model_id if model else meta.get("model_id"),
                          model.content_hash if model else meta.get("model_hash"))
        citations = None
        if self.cite and art is not None:
            try:
                citations = CitationIndex.from_lineage(svc, art.id)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("citations of %s unavailable (no spans or locations): %s", target, exc)
        log.info("serving %s from %s (v%s, model %s, fusion %s)", self.name, target, version.version,
                 version.model_id, (fusion_of(art.params) if art else DEFAULT_FUSION).label)
        return QueryPath(svc.store, target, encode=encode, fusion=fusion_of(art.params) if art else DEFAULT_FUSION,
                         reranker=self.reranker_for(svc, version), citations=citations, version=version,
                         encoder_problem=problem)

    def _refresh_params(self, path: QueryPath) -> QueryPath:
        """The same version with its fusion and reranker re-read (tuning or a promotion meanwhile)."""
        if path.version.artifact_id is None:
            return path
        try:
            art = self.svc.registry.get_artifact(path.version.artifact_id)
        except Exception as exc:  # noqa: BLE001 - the registry may blink; the version serves as it was
            log.warning("could not re-read the params of %s (keeping them): %s", path.collection, exc)
            return path
        fusion = fusion_of(art.params) if art else path.fusion
        reranker = self.reranker_for(self.svc, path.version)
        if fusion == path.fusion and reranker.name == path.reranker.name:
            return path
        return QueryPath(path.store, path.collection, encode=path.encode, fusion=fusion, reranker=reranker,
                         citations=path.citations, version=path.version, encoder_problem=path.encoder_problem)
