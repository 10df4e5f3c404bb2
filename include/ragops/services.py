"""The services a step works with, each opened lazily and at most once.

A task (through ``ragops.orchestration.runtime.TaskRuntime``, a subclass) or a CLI command builds
one ``Services`` from its settings and hands it to the logic functions. Nothing here knows
Airflow: the runtime supplies settings read from Connections and Variables, the alert channels
and the LLM endpoint; the CLI supplies settings from the environment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ragops.config import RagopsSettings
from ragops.vocabulary import MODEL_CACHE_DIR

if TYPE_CHECKING:
    from ragops.artifacts import ArtifactStore
    from ragops.lineage import Registry
    from ragops.models import ModelRef
    from ragops.notify import Channel, Notifier
    from ragops.stores import VectorStore
    from ragops.training.compute import PodTrainer, TrainingConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LLMEndpoint:
    """An OpenAI-compatible endpoint. The key stays in this object (repr hides it)."""

    base_url: str
    api_key: str = field(repr=False)
    extra: dict[str, Any] = field(default_factory=dict)


class Services:
    def __init__(self, settings: RagopsSettings, *, channels: Mapping[str, Channel] | None = None,
                 llm: LLMEndpoint | None = None, migrate: bool = False, artifact_root_path: Any = None):
        """``migrate``: create or upgrade the lineage schema on first use (the CLI, setup); tasks
        only check its version. ``artifact_root_path``: a ready path object for a remote artifact
        root (the runtime passes Airflow's ObjectStoragePath, which reads the connection)."""
        self.settings = settings
        self.channels = dict(channels or {})
        self.llm = llm
        self._migrate = migrate
        self._artifact_root_path = artifact_root_path

    @cached_property
    def registry(self) -> Registry:
        from ragops.lineage import Registry

        registry = Registry(self.settings.pg_dsn, self.settings.schema)
        if self._migrate:
            registry.migrate()
        else:
            registry.require_current()
        return registry

    @cached_property
    def artifacts(self) -> ArtifactStore:
        from ragops.artifacts import ArtifactStore

        return ArtifactStore(self.settings.artifact_root, root_path=self._artifact_root_path)

    @cached_property
    def store(self) -> VectorStore:
        from ragops.stores import open_store

        return open_store(self.settings)

    @cached_property
    def notifier(self) -> Notifier:
        from ragops.notify import Notifier

        # Alerts link to the Airflow run: the UI's base URL, as the deployment configures it.
        base_url = os.environ.get("RAGOPS_UI_BASE_URL") or os.environ.get("AIRFLOW__API__BASE_URL")
        return Notifier(registry=self.registry, channels=dict(self.channels), base_url=base_url)

    @property
    def fallbacks(self) -> list[dict[str, str]]:
        return [fb.as_dict() for fb in self.settings.fallbacks]

    @property
    def model_cache(self) -> str:
        """This worker's model cache: models are materialised here from their artifact URIs."""
        return os.environ.get("RAGOPS_MODEL_CACHE") or MODEL_CACHE_DIR

    def model_path(self, model: ModelRef) -> str:
        """A local folder holding ``model``, filled into this worker's cache on first use."""
        from ragops.models import materialize

        return materialize(model, self.artifacts, self.model_cache)

    # -- what a run's params may read (issue 9, defect 6) -------------------------------------
    @property
    def allowed_roots(self) -> tuple[str, ...] | None:
        """Folders a run's params may name (sources, golden queries, BEIR folders, model folders):
        the settings' allow-list plus the demo corpus folder and a local artifact root, which are
        the bundle's own. None: any folder (the CLI, whose user names their own files)."""
        if self.settings.allowed_roots is None:
            return None
        from ragops.demo_corpus import PG_DOCS_DIR

        own = [os.environ.get("RAGOPS_PG_DOCS") or str(PG_DOCS_DIR)]
        root = self.settings.artifact_root
        if root and ("://" not in root or root.startswith("file://")):
            own.append(root.removeprefix("file://"))
        return tuple(self.settings.allowed_roots) + tuple(own)

    def allowed_path(self, param: str, value: str) -> str:
        """``value`` when it lies inside the allowed roots (after resolving ``..`` and symlinks);
        else InvalidInput naming ``param``. Nothing is read or listed to decide."""
        roots = self.allowed_roots
        if roots is None:
            return value
        from ragops.config import within_roots
        from ragops.errors import InvalidInput
        from ragops.vocabulary import ALLOWED_ROOTS_VARIABLE

        if not within_roots(value, roots):
            raise InvalidInput(f"param {param}: {value!r} is outside the folders runs may read "
                               f"{list(self.settings.allowed_roots or ())} (the Variable {ALLOWED_ROOTS_VARIABLE}; "
                               "the demo corpus and a local artifact root are always allowed)")
        return value

    def allowed_model(self, param: str, ref: str) -> str:
        """A model reference: registry references (production, base, v<N>) as they are, a model
        folder only inside the allowed roots (``allowed_path``)."""
        if ref in ("", "production", "base") or (ref.startswith("v") and ref[1:].isdigit()):
            return ref
        return self.allowed_path(param, ref)

    def storage_options_for(self, uri: str) -> dict[str, Any]:
        """fsspec options a trainer process needs to reach ``uri``: none here (the CLI's trainer
        finds credentials in its environment); the task runtime derives them from the connection
        the URI names, for a local child process's environment only."""
        return {}

    def training_config(self, compute: str | None = None) -> TrainingConfig:
        """Where trainers run: a local process here; the task runtime reads the ``ragops_training``
        Variable instead. ``compute`` overrides the configured compute for one run."""
        from ragops.training.compute import TrainingConfig

        return TrainingConfig.from_value(None, compute_override=compute or None)

    def run_trainer_pod(self, args: list[str], trainer: PodTrainer | None = None) -> None:
        """Runs a training entrypoint (``trainer``: which one, default the embedding trainer's) in a
        GPU pod: only a task can (the runtime overrides this)."""
        from ragops.errors import InvalidInput

        raise InvalidInput("compute 'kubernetes' runs the trainer in a GPU pod, which only a DAG run can start")

    def close(self) -> None:
        store = self.__dict__.get("store")
        if store is not None and hasattr(store, "close"):
            store.close()
