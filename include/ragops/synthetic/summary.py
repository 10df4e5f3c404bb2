"""rag_synthetic_data's lineage summary: built from the run's records, pushed to XCom and stored with the run."""

from __future__ import annotations

from typing import Any

from ragops.records import Record, result_of
from ragops.runs import RunRef
from ragops.services import Services
from ragops.synthetic.records import (
    DatasetQuality,
    DatasetVersion,
    Filtered,
    Generated,
    Negatives,
    Publication,
    ReviewExport,
    ReviewImport,
    Sample,
    Split,
    SyntheticRun,
)


def summarize(svc: Services, run: RunRef, results: dict[str, Any]) -> dict[str, Any]:
    """The compact record of a run: ids, versions, counts; never data. ``results`` maps task ids
    to their records' XCom forms (the DAG) or to the records themselves (the CLI)."""
    synth = result_of(results, "prepare", SyntheticRun)
    dq = result_of(results, "validate", DatasetQuality)
    reviewed = result_of(results, "import_review", ReviewImport)
    published = result_of(results, "publish", Publication)
    exported = result_of(results, "export_review", ReviewExport)
    dataset = reviewed.dataset if reviewed else result_of(results, "register", DatasetVersion)
    summary: dict[str, Any] = {
        "mode": "import_review" if reviewed else "generate" if synth else None,
        "fallbacks": list(run.fallbacks),
        "source": synth and {"alias": synth.alias, "chunk_set_id": synth.source.chunk_set_id,
                             "chunk_set_version": synth.source.version, "collection": synth.source.collection,
                             "collection_matches": synth.source.collection_matches, "model": synth.model.model_id},
        "sample": _brief(results, "sample", Sample),
        "generate": _brief(results, "generate", Generated),
        "filter": _brief(results, "filter_queries", Filtered),
        "negatives": _brief(results, "mine_negatives", Negatives),
        "split": _brief(results, "split", Split),
        "dq": dq and {"success": dq.success, "failures": [f.get("message") for f in dq.failures]},
        "dataset": dataset and {**dataset.to_xcom(), "usable": dataset.usable},
        "review": reviewed and {"review_id": reviewed.review_id, "reviewed_from": reviewed.reviewed_from,
                                "counts": reviewed.counts},
        "review_export": exported and exported.uri and {"uri": exported.uri, "rows": exported.rows},
        "published": bool(published and not published.skip_reason),
        # nothing new: the same inputs gave the version already registered as usable
        "noop": bool(dataset and dataset.usable and not dataset.new_version),
    }
    return {k: v for k, v in summary.items() if v is not None}


def _brief(results: dict[str, Any], task_id: str, record: type[Record]) -> dict[str, Any] | None:
    """A step's record without its table's URI."""
    value = result_of(results, task_id, record)
    return None if value is None else {k: v for k, v in value.to_xcom().items() if k != "uri"}
