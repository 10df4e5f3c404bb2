"""Which registry artifacts one step read and wrote: the raw material of its lineage events.

``RecordingRegistry`` is the lineage registry plus a ledger (``ArtifactAccess``). What counts:
- **written** (outputs): an artifact the step recorded (``record_artifact``), an alias it moved to
  an artifact (``set_alias``), an artifact it moved to a stage (``set_stage``);
- **read** (inputs): the parents the step linked its outputs to (``record_artifact(parents=)``,
  ``add_edge``), and the artifacts it looked up by id, alias or stage, or annotated
  (``get_artifact``, ``get_alias``, ``in_stage``, ``update_artifact``).
Searches (``find_artifact``, ``list_artifacts``) are not reads: they ask whether something exists.

Nothing here knows Airflow or OpenLineage: ``ragops.orchestration.openlineage`` translates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ragops.lineage import Artifact, Registry


@dataclass
class ArtifactAccess:
    """Artifact ids read and written, in first-touched order."""

    read: dict[int, None] = field(default_factory=dict)
    written: dict[int, None] = field(default_factory=dict)

    def reads(self, *ids: int | None) -> None:
        self.read.update((i, None) for i in ids if i is not None)

    def writes(self, *ids: int | None) -> None:
        self.written.update((i, None) for i in ids if i is not None)

    def resolve(self, registry: Registry) -> tuple[list[Artifact], list[Artifact]]:
        """(inputs, outputs) as the registry holds them now (final metrics and status); an
        artifact both read and written is an output only."""
        fetch = Registry.get_artifact  # the plain lookup: resolving is not reading
        outputs = [a for i in self.written if (a := fetch(registry, i)) is not None]
        inputs = [a for i in self.read if i not in self.written and (a := fetch(registry, i)) is not None]
        return inputs, outputs

    def __bool__(self) -> bool:
        return bool(self.read or self.written)


class RecordingRegistry(Registry):
    """The registry, noting each artifact a step reads or writes in ``access``."""

    def __init__(self, dsn: str, schema: str = "ragops", access: ArtifactAccess | None = None):
        super().__init__(dsn, schema)
        self.access = access if access is not None else ArtifactAccess()

    def record_artifact(self, kind: str, name: str, content_hash: str, uri: str, **kwargs: Any) -> Artifact:
        art = super().record_artifact(kind, name, content_hash, uri, **kwargs)
        self.access.reads(*(parent for parent, _ in kwargs.get("parents") or ()))
        self.access.writes(art.id)
        return art

    def update_artifact(self, artifact_id: int, **kwargs: Any) -> Artifact:
        art = super().update_artifact(artifact_id, **kwargs)
        self.access.reads(art.id)
        return art

    def add_edge(self, parent_id: int, child_id: int, relation: str) -> None:
        super().add_edge(parent_id, child_id, relation)
        self.access.reads(parent_id)

    def get_artifact(self, artifact_id: int) -> Artifact | None:
        art = super().get_artifact(artifact_id)
        self.access.reads(art.id if art else None)
        return art

    def get_alias(self, kind: str, alias: str) -> Artifact | None:
        art = super().get_alias(kind, alias)
        self.access.reads(art.id if art else None)
        return art

    def in_stage(self, kind: str, name: str, stage: str) -> Artifact | None:
        art = super().in_stage(kind, name, stage)
        self.access.reads(art.id if art else None)
        return art

    def set_alias(self, kind: str, alias: str, artifact_id: int, **kwargs: Any) -> int | None:
        previous = super().set_alias(kind, alias, artifact_id, **kwargs)
        self.access.writes(artifact_id)
        return previous

    def set_stage(self, artifact_id: int, stage: str, **kwargs: Any) -> list[int]:
        archived = super().set_stage(artifact_id, stage, **kwargs)
        self.access.writes(artifact_id)
        return archived
