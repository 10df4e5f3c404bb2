"""rag_finetune_embeddings' evaluate step: base, live and candidate through the one evaluator.

The evaluator itself (sets, metrics per dim, the chart) is ``ragops.training.evaluate``; this step
gathers the sets (the dataset's test split, optional golden and BEIR guard sets), materialises the
three models on this worker, scores them in the live collection's served mode
(``ragops.training.served``: the primary set when the collection can be searched, the test split
then a guard), and saves the report and chart as artifacts. The record it returns
holds their URIs and the headline numbers; the gate reads the whole report from the store.
"""

from __future__ import annotations

import logging
from typing import Any

from ragops.errors import InvalidInput
from ragops.hashing import short
from ragops.models import ModelRef, resolve_embedding_model
from ragops.services import Services
from ragops.training.gate import PRIMARY_METRIC, SERVED_SET
from ragops.training.params import FinetuneParams
from ragops.training.records import Evaluation, TrainingInputs

log = logging.getLogger(__name__)

# Evaluated below a model's full size when the run names no Matryoshka dims.
STANDARD_DIMS = (768, 512, 256, 128, 64)


def evaluate_candidate(svc: Services, params: FinetuneParams, inputs: TrainingInputs,
                       candidate: ModelRef) -> Evaluation:
    """Scores base, live (production now) and candidate on the same sets at every dim."""
    from ragops.synthetic.dataset import load_dataset
    from ragops.training.evaluate import beir_eval_set, evaluate_models, golden_eval_set, save_report

    dataset = load_dataset(svc.artifacts, svc.artifacts.rel_of(inputs.dataset.uri))
    test_rows = dataset["test"].to_list()
    guards = []
    if params.golden_queries:
        guards.append(golden_eval_set(params.golden_queries, test_rows + dataset["train"].to_list()))
    if params.beir_folder:
        guards.append(beir_eval_set(params.beir_folder, params.beir_split, max_queries=params.beir_max_queries,
                                    extra_corpus=params.beir_distractors or 0))
    models = {"base": resolve_embedding_model("base", svc.registry, name=inputs.model_name),
              "live": resolve_embedding_model("production", svc.registry, name=inputs.model_name),
              "candidate": candidate}
    paths = {label: svc.model_path(model) for label, model in models.items()}
    dims = list(inputs.hyperparameters.matryoshka_dims) or _all_dims(paths["candidate"])
    report = evaluate_models(paths, test_rows, dims, params.ks, guard_sets=guards)
    add_served_set(svc, params.alias, test_rows, paths, report, max_queries=params.served_max_queries)
    for label, model in models.items():  # where each model is, not where this worker cached it
        entry = report["models"][label]
        entry.pop("path", None)
        entry["uri"] = model.uri
    report["model_ids"] = {label: model.model_id for label, model in models.items()}
    report["artifact_ids"] = {label: model.artifact_id for label, model in models.items()}
    uris = save_report(report, svc.artifacts, f"evaluations/{inputs.model_name}/{short(candidate.content_hash, 16)}")
    _log_links(svc, uris)
    primary, full = report["primary_set"], str(report["dims"][0])
    headline = {label: report["models"][label]["metrics"][primary][full][PRIMARY_METRIC] for label in models}
    log.info("%s on %s at %s dims: %s", PRIMARY_METRIC, primary, full, headline)
    return Evaluation(uris["report_uri"], uris["chart_uri"], primary, tuple(report["dims"]), report["model_ids"],
                      report["artifact_ids"], headline)


def add_served_set(svc: Services, alias: str, test_rows: list[dict[str, Any]], paths: dict[str, str],
                   report: dict[str, Any], *, max_queries: int | None = None) -> None:
    """Scores every model in the served mode of the live collection ``alias`` (``training.served``)
    and makes that set the primary one, the test split a guard. Without a searchable live
    collection the test split stays primary, and the report says why (``skipped_sets``)."""
    from ragops.training.served import served_metrics, served_pool

    try:
        pool = served_pool(svc, alias, test_rows, max_queries=max_queries)
    except (InvalidInput, ValueError) as exc:  # no such alias, no query encoder here, an empty split
        why = f"{type(exc).__name__}: {exc}"
        log.warning("gate without the served-mode set (%s): the test split stays the primary set", why)
        report["skipped_sets"] = {SERVED_SET: why}
        return
    full = str(report["dims"][0])
    scored: dict[str, dict[str, float]] = {}
    for label, path in paths.items():
        if str(path) not in scored:
            scored[str(path)] = served_metrics(pool, str(path))
        report["models"][label]["metrics"][SERVED_SET] = {full: scored[str(path)]}
    log.info("%s on %s (%s): %s", PRIMARY_METRIC, SERVED_SET, pool.path.collection,
             {label: report["models"][label]["metrics"][SERVED_SET][full][PRIMARY_METRIC] for label in paths})
    report["sets"] = {SERVED_SET: pool.describe(), **{name: {**s, "guard": True} for name, s in report["sets"].items()}}
    report["primary_set"] = SERVED_SET


def _all_dims(model_path: str) -> list[int]:
    from ragops.embedding import Embedder

    full = Embedder(model_path).dimension
    return [full] + [d for d in STANDARD_DIMS if d < full]


def _log_links(svc: Services, uris: dict[str, str]) -> None:
    """Where to look at the chart and the report: the UI plugin's URLs for a local store."""
    from ragops.training.links import artifact_url

    if svc.artifacts.is_local:
        log.info("evaluation chart: %s", artifact_url(uris["chart_rel"]))
        log.info("evaluation report: %s", artifact_url(uris["report_rel"]))
    else:
        log.info("evaluation chart: %s", uris["chart_uri"])
