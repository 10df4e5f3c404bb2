"""Rerankers in the registry: versions of model ``reranker`` with stages, history and rollback.

A trained reranker is a model folder (``reranker.json`` names its kind) registered as a
``candidate`` version of ``reranker``; the gate promotes it to ``production`` (the previous one is
archived in the same transaction) and ``rollback`` brings an earlier production version back.
``reranker_for`` gives the ``Retriever`` the production reranker: it re-reads the stage on each
call (the retriever asks when a version is first served and at every params refresh), and loads
each version once per process.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragops.retrieval.rerank import IdentityReranker, Reranker
from ragops.training.compute import PodTrainer
from ragops.vocabulary import RERANKER_NAME, ArtifactKind, RerankerKind, Stage

if TYPE_CHECKING:
    from ragops.lineage import Artifact
    from ragops.retrieval.hits import Version
    from ragops.services import Services

log = logging.getLogger(__name__)

# The cross-encoder trainer in the GPU pod (docker/Dockerfile.trainer copies the file there).
TRAINER_ENTRYPOINT = Path(__file__).with_name("train_cross_encoder.py")
RERANKER_TRAINER = PodTrainer("train-reranker", "/opt/ragops/train_cross_encoder.py")
META_FILE = "reranker.json"
KEPT = 2   # reranker versions kept loaded per process (the production one and the one before)


def reranker_kind(folder: str | Path) -> RerankerKind:
    meta = Path(folder) / META_FILE
    if not meta.exists():
        raise ValueError(f"{folder} holds no reranker ({META_FILE} is missing)")
    return RerankerKind(json.loads(meta.read_text())["kind"])


def load_reranker(folder: str | Path, name: str) -> Reranker:
    """The reranker in a model folder, by the kind its ``reranker.json`` names."""
    kind = reranker_kind(folder)
    if kind == RerankerKind.LTR:
        from ragops.reranking.ltr import LTRReranker

        return LTRReranker.load(folder, name)
    from ragops.reranking.cross_encoder import CrossEncoderReranker

    return CrossEncoderReranker(folder, name)


def reranker_id(art: Artifact) -> str:
    return f"{art.name}:v{art.version}"


_LOADED: OrderedDict[tuple[str, str], Reranker] = OrderedDict()
_LOCK = threading.Lock()


def load_version(svc: Services, art: Artifact) -> Reranker:
    """A registered reranker version, loaded once per process (by content hash)."""
    from ragops.models import artifact_model_path

    key = (art.content_hash, reranker_id(art))
    with _LOCK:
        found = _LOADED.get(key)
        if found is not None:
            _LOADED.move_to_end(key)
            return found
    folder = artifact_model_path(art, svc.artifacts, svc.model_cache)
    reranker = load_reranker(folder, reranker_id(art))
    with _LOCK:
        _LOADED[key] = reranker
        while len(_LOADED) > KEPT:
            _LOADED.popitem(last=False)
    return reranker


def production_reranker(svc: Services, name: str = RERANKER_NAME) -> Reranker:
    """The production reranker, or the identity reranker when none was promoted."""
    art = svc.registry.in_stage(ArtifactKind.MODEL, name, Stage.PRODUCTION)
    return IdentityReranker() if art is None else load_version(svc, art)


def reranker_for(svc: Services, version: Version | None = None) -> Reranker:
    """``Retriever(reranker_for=...)``: the production reranker; the identity reranker (logged)
    when it cannot be loaded, so a broken promotion never stops the first stage from serving."""
    try:
        return production_reranker(svc)
    except Exception as exc:  # noqa: BLE001 - the first stage keeps serving
        log.warning("the production reranker cannot be loaded (serving the first stage's order): %s", exc)
        return IdentityReranker()


def loaded() -> dict[str, Any]:
    """What this process holds loaded (for tests and the service's health)."""
    with _LOCK:
        return {name: type(r).__name__ for (_, name), r in _LOADED.items()}
