"""rag_synthetic_data's closing steps: validate -> register -> export a review sample -> publish.

A dataset that fails its data-quality suite is still registered, as ``failed_dq``, with an
alert: it is never used, and nothing is published. The dataset asset is emitted only for a new
usable version (``Publication``): an unchanged corpus yields the same version and the loop
index -> data -> fine-tune -> index settles.
"""

from __future__ import annotations

from ragops.hashing import short
from ragops.services import Services
from ragops.synthetic.dataset import COLUMNS, dataset_rows, record_version, splits_of
from ragops.synthetic.params import SyntheticParams
from ragops.synthetic.records import (
    DatasetQuality,
    DatasetVersion,
    Filtered,
    Generated,
    Negatives,
    Publication,
    ReviewExport,
    ReviewImport,
    Split,
    SyntheticRun,
)
from ragops.vocabulary import DATASET_NAME, Relation


def validate(svc: Services, params: SyntheticParams, run: SyntheticRun, split: Split) -> DatasetQuality:
    """The dataset suite (schema, nulls, lengths, duplicates, leakage, balance), recorded with the run."""
    from ragops.synthetic.quality import SUITE_NAME, validate_dataset

    result = validate_dataset(splits_of(svc.artifacts, split.uri), min_words=params.min_query_words,
                              max_words=params.max_query_words, max_doc_share=params.max_doc_share)
    target = f"dataset:{short(split.content_hash)}"
    svc.registry.record_dq(run.run_key, SUITE_NAME, target, result.success, result.statistics, result.failures)
    return DatasetQuality(SUITE_NAME, target, bool(result.success), tuple(result.failures[:20]), result.statistics)


def register(svc: Services, params: SyntheticParams, run: SyntheticRun, split: Split, dq: DatasetQuality,
             generated: Generated, filtered: Filtered, negatives: Negatives) -> DatasetVersion:
    """Saves the DatasetDict and records it with its lineage: ``usable`` when the suite passed,
    else ``failed_dq`` (recorded, alerted, never used)."""
    stats = generated.stats
    metrics = {
        **{k: v for k, v in split.to_xcom().items() if k.startswith(("rows_", "docs_", "negatives_"))},
        "generator": generated.generator, "sampled_chunks": generated.chunks, "generated_queries": generated.queries,
        "filter_counts": filtered.filter_counts, "kept_queries": filtered.kept, "negatives_mined": negatives.mined,
        "prompt_tokens": stats.get("prompt_tokens", 0), "completion_tokens": stats.get("completion_tokens", 0),
        "total_tokens": stats.get("prompt_tokens", 0) + stats.get("completion_tokens", 0),
        "cost_usd": stats.get("cost_usd", 0.0), "llm_calls": stats.get("calls", 0),
        "llm_cache_hits": stats.get("cache_hits", 0), "dropped": {k: v for k, v in stats.items() if k.startswith("dropped_")},
        "dq_success": dq.success,
    }
    parents = [(run.source.chunk_set_id, Relation.GENERATED_FROM)]
    if generated.prompt_id:
        parents.append((generated.prompt_id, Relation.PROMPT))
    if generated.llm_id:
        parents.append((generated.llm_id, Relation.GENERATED_BY))
    if run.model.artifact_id and (params.round_trip or params.hard_negatives):
        parents.append((run.model.artifact_id, Relation.FILTERED_WITH))
    llm = generated.llm or {}
    recorded = {"generator": generated.generator, "prompt_version": generated.prompt_version,
                "llm_model": llm.get("model"), "temperature": llm.get("temperature"), "seed": params.seed,
                "sample_size": params.sample_size, "sample_strategy": params.sample_strategy,
                "questions_per_chunk": params.questions_per_chunk, "test_ratio": params.test_ratio,
                "round_trip": params.round_trip, "round_trip_k": params.round_trip_k,
                "hard_negatives": params.hard_negatives, "chunk_set_id": run.source.chunk_set_id,
                "embedding_model": run.model.model_id, "columns": list(COLUMNS)}
    dataset = record_version(svc, splits_of(svc.artifacts, split.uri), split.content_hash, usable=dq.success,
                             params=recorded, metrics=metrics, parents=parents, run_key=run.run_key)
    if not dq.success:
        svc.notifier.alert(f"synthetic dataset v{dataset.version} failed data quality",
                           f"dataset {DATASET_NAME} v{dataset.version} is recorded as failed_dq and will not "
                           "be used: " + "; ".join(str(f) for f in dq.failures)[:1500],
                           severity="error", run_key=run.run_key, context={"dataset_id": dataset.dataset_id})
    return dataset


def export_review(svc: Services, params: SyntheticParams, dataset: DatasetVersion) -> ReviewExport:
    """Writes a review sample of a dataset version to ``reviews/`` in the artifact store
    (none when ``review_sample_size`` is 0: the record then skips its task)."""
    from ragops.synthetic.review import render_review_file, review_sample

    size, seed, fmt = params.review_sample_size, params.seed, params.review_format
    if not size:
        return ReviewExport(dataset.dataset_id, dataset.version, None)
    rows = review_sample(dataset_rows(svc.artifacts, svc.artifacts.rel_of(dataset.uri)), size, seed)
    rel = f"reviews/{DATASET_NAME}/v{dataset.version}-{short(dataset.content_hash)}/sample-n{size}-s{seed}.{fmt}"
    return ReviewExport(dataset.dataset_id, dataset.version, svc.artifacts.write_bytes(rel, render_review_file(rows, fmt)),
                        len(rows))


def publish_dataset(dataset: DatasetVersion | None, reviewed: ReviewImport | None) -> Publication:
    """This run's dataset version (generated, or imported from a review) as the asset's event."""
    if reviewed is not None:
        return Publication(reviewed.dataset, reviewed=True)
    return Publication(dataset)
