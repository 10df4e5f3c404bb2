"""Every ragops task's real inputs and outputs, reported to Airflow's OpenLineage integration.

A task's registry records what it read and wrote (``ragops.artifact_access``); its operator,
``RagopsTaskOperator`` (what ``@ragops_task`` builds: ``@task``'s operator plus the provider's
``get_openlineage_facets_on_complete``/``..._on_failure`` methods), hands them to the
OpenLineage listener as datasets. The ledger is resolved only when the listener asks, so a
deployment without an OpenLineage transport pays nothing.

Naming (https://openlineage.io/docs/spec/naming): a registry artifact is the dataset
``namespace = ragops://<kind>``, ``name = <artifact name>``: ``ragops://collection`` +
``RagDocs`` is the collection behind the alias RagDocs (the same string as its Airflow asset,
``ragops://collection/RagDocs``), ``ragops://chunks`` + ``RagDocs`` its chunk sets,
``ragops://model`` + the model's registry name. Versions are not separate datasets: each event
carries the version that was read or written in the standard ``version`` facet
(``v<registry version>``), and the ``ragops_artifact`` facet holds the registry id, kind, version,
content hash, URI, status, stage and metrics, and the lineage schema they came from.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import attr
from airflow.providers.standard.decorators.python import _PythonDecoratedOperator

from ragops.vocabulary import OPENLINEAGE_ARTIFACT_FACET, OPENLINEAGE_SCHEME

if TYPE_CHECKING:
    from openlineage.client.event_v2 import Dataset

    from ragops.artifact_access import ArtifactAccess
    from ragops.lineage import Artifact, Registry

log = logging.getLogger(__name__)
LEDGER = "_ragops_artifact_access"   # the operator attribute the task body leaves its ledger in


def dataset_namespace(kind: str) -> str:
    return f"{OPENLINEAGE_SCHEME}://{kind}"


def artifact_facet_class() -> type:
    """The ``ragops_artifact`` dataset facet (built on first use: the client is imported lazily)."""
    global _FACET
    if _FACET is None:
        from openlineage.client.facet_v2 import DatasetFacet

        @attr.define
        class RagopsArtifactDatasetFacet(DatasetFacet):
            """A ragops lineage-registry artifact: what the registry knows of this version."""

            artifactId: int
            kind: str
            version: int
            contentHash: str  # OpenLineage facet fields are camelCase
            uri: str
            status: str
            stage: str | None
            metrics: dict[str, Any]
            registrySchema: str

            @staticmethod
            def _get_schema() -> str:
                return "https://github.com/ragops/ragops/blob/main/docs/openlineage.md#ragops_artifact"

        _FACET = RagopsArtifactDatasetFacet
    return _FACET


_FACET: type | None = None


def as_dataset(artifact: Artifact, registry_schema: str) -> Dataset:
    """One registry artifact as an OpenLineage dataset, with its version and registry facets."""
    from openlineage.client.event_v2 import Dataset
    from openlineage.client.facet_v2 import dataset_version_dataset

    facet = artifact_facet_class()(
        artifactId=artifact.id, kind=artifact.kind, version=artifact.version, contentHash=artifact.content_hash,
        uri=artifact.uri, status=str(artifact.status), stage=artifact.stage, metrics=dict(artifact.metrics or {}),
        registrySchema=registry_schema)
    return Dataset(namespace=dataset_namespace(artifact.kind), name=artifact.name, facets={
        "version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=f"v{artifact.version}"),
        OPENLINEAGE_ARTIFACT_FACET: facet})


def operator_lineage(registry: Registry, access: ArtifactAccess) -> Any:
    """The provider's ``OperatorLineage`` of one task: its ledger, resolved against the registry."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    inputs, outputs = access.resolve(registry)
    return OperatorLineage(inputs=[as_dataset(a, registry.schema) for a in inputs],
                           outputs=[as_dataset(a, registry.schema) for a in outputs])


class RagopsTaskOperator(_PythonDecoratedOperator):
    """``@task``'s operator, telling OpenLineage which registry artifacts the task read and wrote."""

    custom_operator_name = "@ragops_task"

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        ledger = getattr(self, LEDGER, None)
        if ledger is None:
            return None  # the body never ran here (or reports no lineage): the provider's defaults apply
        return operator_lineage(*ledger)

    # A failed task still read and wrote what it did before failing.
    get_openlineage_facets_on_failure = get_openlineage_facets_on_complete


def leave_ledger(context: Any, registry: Registry, access: ArtifactAccess) -> None:
    """Called by the task body: hands the ledger to the running operator for the listener."""
    task = context.get("task")
    if isinstance(task, RagopsTaskOperator) and access:
        setattr(task, LEDGER, (registry, access))
