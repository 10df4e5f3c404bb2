"""The LLM in the registry: versions of model ``llm`` (stages, history) and its adapters (kind ``adapter``).

There is no packaged base LLM: the first run names one (a model folder or a model folder in the
artifact store), and it is registered as a version of ``llm`` without a stage, so that adapters,
merged models and evaluations can point at it. ``production`` is the production version; before
the first promotion there is none, and the base a run names is what is live.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ragops.errors import InvalidInput
from ragops.models import ModelRef, model_dir_hash
from ragops.vocabulary import LLM_MODEL_NAME, ArtifactKind, Stage, Status

if TYPE_CHECKING:
    from ragops.services import Services


def weights_hash(svc: Services, rel: str) -> str:
    """A model folder of the store's content hash (fetched into a scratch folder when remote)."""
    if svc.artifacts.is_local:
        return model_dir_hash(svc.artifacts.local_path(rel))
    Path(svc.model_cache).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=svc.model_cache, prefix=".hashing-") as scratch:
        return model_dir_hash(svc.artifacts.download_dir(rel, Path(scratch) / "model"))


def production_llm(svc: Services) -> ModelRef | None:
    live = svc.registry.in_stage(ArtifactKind.MODEL, LLM_MODEL_NAME, Stage.PRODUCTION)
    return ModelRef.of(live) if live is not None else None


def resolve_llm(svc: Services, ref: str, *, run_key: str | None = None) -> ModelRef:
    """``production``, ``v<N>`` (a registered version of ``llm``), a model folder, or a model folder's
    URI in the artifact store (registered as a version, idempotently, by its weights' hash)."""
    ref = (ref or "production").strip()
    if ref == "production":
        live = production_llm(svc)
        if live is None:
            raise InvalidInput(f"param base_model='production': no {LLM_MODEL_NAME!r} version is in production yet; "
                               "name the base LLM (a model folder, or its URI in the artifact store)")
        return live
    if ref.startswith("v") and ref[1:].isdigit():
        art = svc.registry.find_artifact(ArtifactKind.MODEL, LLM_MODEL_NAME, version=int(ref[1:]))
        if art is None:
            raise InvalidInput(f"param base_model={ref!r}: no version {ref[1:]} of {LLM_MODEL_NAME!r} in the registry")
        return ModelRef.of(art)
    if "://" in ref and not ref.startswith("file://"):
        try:
            rel = svc.artifacts.rel_of(ref)
        except ValueError as exc:
            raise InvalidInput(f"param base_model={ref!r} is outside the artifact store {svc.artifacts.root_uri}") from exc
        if not svc.artifacts.exists(f"{rel}/config.json"):
            raise InvalidInput(f"param base_model={ref!r} holds no transformers model (no config.json)")
        uri, content_hash, model_id = svc.artifacts.uri(rel), weights_hash(svc, rel), None
    else:
        path = Path(svc.allowed_path("base_model", ref.removeprefix("file://")))
        if not (path / "config.json").exists():
            raise InvalidInput(f"param base_model={ref!r} is neither 'production', 'v<N>', a model folder nor a "
                               "model's URI in the artifact store")
        uri, content_hash, model_id = str(path.resolve()), model_dir_hash(path), f"path:{path.name}"
    art = svc.registry.record_artifact(ArtifactKind.MODEL, LLM_MODEL_NAME, content_hash, uri,
                                       params={"role": "base", "source": ref}, status=Status.USABLE, run_key=run_key)
    ref_of = ModelRef.of(art)
    # A folder outside the store stays where the user put it (materialised as it is, never copied).
    return ref_of.replace(model_id=model_id) if model_id and art.uri == uri else ref_of


def adapter_version(svc: Services, version: int) -> ModelRef:
    art = svc.registry.find_artifact(ArtifactKind.ADAPTER, LLM_MODEL_NAME, version=int(version))
    if art is None:
        raise InvalidInput(f"param merge_adapters: no adapter version {version} of {LLM_MODEL_NAME!r} in the registry")
    if art.status != Status.USABLE:
        raise InvalidInput(f"param merge_adapters: adapter v{version} is {art.status!r}, not usable")
    return ModelRef.of(art, f"{LLM_MODEL_NAME}-adapter:v{art.version}")
