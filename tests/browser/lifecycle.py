"""What a user has in Airflow after a demo lifecycle, made the way a user makes it: every run
triggered through the REST API (authenticated, with a conf) and polled to its end.

rag_index on a tiny corpus (the test fixture's nine documents), a model stage (rag_model_rollback
to the base model: production), rag_index again after one document changed (two collection
versions), rag_synthetic_data with the offline generator, and rag_evaluate when the bundle has
it. Without rag_evaluate an evaluation artifact is recorded through the registry API instead,
shaped as vocabulary.CONTINUOUS_EVAL_NAME describes, and the test that reads it says so.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

from ragops.vocabulary import CONTINUOUS_EVAL_NAME, MODEL_NAME, ArtifactKind, Relation
from tests.browser.stack import REPO, Airflow

ALIAS = "BrowserDocs"
CHANGED_DOCUMENT = "faq.txt"
EVAL_DAG = "rag_evaluate"


@dataclass(frozen=True)
class Lifecycle:
    """What the populated registry holds, by artifact id: what the pages are checked against."""

    alias: str
    collection_ids: tuple[int, ...]     # version 1, version 2 (live after the second index)
    model_id: int                        # the production embedding model
    dataset_id: int                      # the synthetic dataset version
    evaluation_id: int
    evaluation_by_dag: bool              # False: recorded through the registry API (no rag_evaluate yet)


def index_conf(airflow: Airflow) -> dict[str, Any]:
    corpus = airflow.root / "data" / "docs"
    return {"sources": [{"type": "folder", "name": "docs", "path": str(corpus), "root": str(corpus.parent)}],
            "alias": ALIAS, "chunk_size": 96, "chunk_overlap": 16, "shard_size": 1000, "smoke_sample": 10}


def populate(airflow: Airflow) -> Lifecycle:
    corpus = airflow.root / "data" / "docs"
    shutil.copytree(REPO / "tests" / "fixtures" / "corpus", corpus)
    registry = airflow.registry()

    airflow.run_dag("rag_index", index_conf(airflow))
    v1 = registry.get_alias(ArtifactKind.COLLECTION, ALIAS)
    base = registry.find_artifact(ArtifactKind.MODEL, MODEL_NAME, version=1)
    assert v1 is not None and base is not None, "the first rag_index run left no live collection or base model"

    # one document changes; the model stage is set beside the re-index (both use the base model)
    with (corpus / CHANGED_DOCUMENT).open("a") as doc:
        doc.write("\n\nQ: Where does the control plane live?\n"
                  "A: Inside the Airflow UI, under RAG control plane, next to the DAGs it drives.\n")
    reindex = airflow.trigger("rag_index", index_conf(airflow))
    stage = airflow.trigger("rag_model_rollback", {"to_version": base.version,
                                                   "reason": "browser tier: the base model in production"})
    airflow.wait("rag_model_rollback", stage)
    airflow.wait("rag_index", reindex)
    v2 = registry.get_alias(ArtifactKind.COLLECTION, ALIAS)
    assert v2 is not None and v2.id != v1.id and v2.version == 2, (v1, v2)

    airflow.run_dag("rag_synthetic_data", {"alias": ALIAS, "sample_size": 30, "questions_per_chunk": 2,
                                           "generator": "offline", "test_ratio": 0.3, "max_doc_share": 0.5})
    datasets = registry.list_artifacts(ArtifactKind.DATASET)
    assert datasets, "rag_synthetic_data recorded no dataset"

    if EVAL_DAG in airflow.dag_ids:
        airflow.run_dag(EVAL_DAG, {"alias": ALIAS, "max_queries": 40, "sample_size": 5})
        by_dag = True
    else:
        _record_evaluation(registry, v2.id)
        by_dag = False
    evaluations = registry.list_artifacts(ArtifactKind.EVALUATION, CONTINUOUS_EVAL_NAME)
    assert evaluations, f"no {CONTINUOUS_EVAL_NAME} evaluation artifact"
    return Lifecycle(ALIAS, (v1.id, v2.id), base.id, datasets[-1].id, evaluations[-1].id, by_dag)


def _record_evaluation(registry: Any, collection_id: int) -> None:
    """An evaluation result as rag_evaluate records it, for a bundle that does not have the DAG yet."""
    metrics = {"sets": {"synthetic-test": {"ndcg@10": 0.71, "mrr@10": 0.64, "recall@10": 0.83,
                                           "by_source": {"docs": {"ndcg@10": 0.71}}}},
               "generation": {}}
    registry.record_artifact(ArtifactKind.EVALUATION, CONTINUOUS_EVAL_NAME, f"browser-tier-{collection_id}",
                             f"registry://evaluation/{collection_id}", metrics=metrics, status="usable",
                             params={"recorded_by": "tests/browser (no rag_evaluate DAG in the bundle)"},
                             parents=[(collection_id, Relation.EVALUATES)])
