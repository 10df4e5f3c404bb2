"""One evaluator for every embedding model: base, live production and candidate.

Queries retrieve passages (query -> chunk), scored by sentence-transformers'
``InformationRetrievalEvaluator`` at every Matryoshka dim (nDCG@10, MRR@10, Recall@k). The sets:

- the dataset's test split (the primary set): each query's relevant passage is its positive's
  chunk; the corpus is every positive and negative of the split, plus the chunk set when given;
- guard sets, optional: golden human-written queries (JSONL ``{query, chunk_id | doc_id}``) and a
  BEIR folder (doc level, a split's qrels). A candidate must not get worse on them.

Each model's texts are encoded once at full size and truncated per dim (what ``truncate_dim``
does), so four dims cost one encoding pass instead of four.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragops.hashing import sha256_text
from ragops.progress import Progress

if TYPE_CHECKING:
    from ragops.artifacts import ArtifactStore

log = logging.getLogger(__name__)

PRIMARY_SET = "synthetic-test"
DEFAULT_KS = (10, 100)
REPORT_FILE = "report.json"
CHART_FILE = "ndcg_by_dim.png"


@dataclass
class EvalSet:
    """Queries, a corpus and the relevant corpus ids per query; ``guard`` sets must not regress."""

    name: str
    queries: dict[str, str]
    corpus: dict[str, str]
    relevant: dict[str, set[str]]
    guard: bool = False
    level: str = "chunk"
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.relevant = {q: {c for c in docs if c in self.corpus} for q, docs in self.relevant.items()
                         if q in self.queries}
        self.relevant = {q: docs for q, docs in self.relevant.items() if docs}
        if not self.relevant:
            raise ValueError(f"evaluation set {self.name!r}: no query has a relevant passage in its corpus")
        self.queries = {q: t for q, t in self.queries.items() if q in self.relevant}

    def describe(self) -> dict[str, Any]:
        return {"queries": len(self.queries), "corpus": len(self.corpus), "guard": self.guard,
                "level": self.level, "notes": self.notes}


def _passage_id(text: str) -> str:
    return f"p{sha256_text(text)[:16]}"


def split_eval_set(rows: Iterable[Mapping[str, Any]], *, name: str = PRIMARY_SET,
                   chunks: Iterable[Mapping[str, Any]] = ()) -> EvalSet:
    """The test split as an IR set. Rows: ``query, positive, negative?, chunk_id``; ``chunks``
    (``chunk_id`` and ``text`` or ``embedding_text``) widen the corpus to the whole chunk set."""
    corpus: dict[str, str] = {}
    id_of_text: dict[str, str] = {}

    def add(text: str, cid: str | None = None) -> str:
        if text in id_of_text:
            return id_of_text[text]
        cid = cid or _passage_id(text)
        corpus[cid] = text
        id_of_text[text] = cid
        return cid

    for chunk in chunks:
        add(str(chunk.get("embedding_text") or chunk["text"]), str(chunk["chunk_id"]))
    queries: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    for row in rows:
        if not row.get("query") or not row.get("positive"):
            continue
        qid = f"q{sha256_text(row['query'])[:16]}"  # the same query twice is one query with two answers
        queries[qid] = row["query"]
        relevant.setdefault(qid, set()).add(add(row["positive"], row.get("chunk_id")))
        if row.get("negative"):
            add(row["negative"])
    return EvalSet(name, queries, corpus, relevant)


def golden_eval_set(path: str | Path, corpus_rows: Iterable[Mapping[str, Any]], *, name: str = "golden") -> EvalSet:
    """Human-written queries scored against a chunk corpus (rows with chunk_id, doc_id, text).

    A doc-level judgement counts every chunk of that document as relevant."""
    from ragops.retrieval_eval import load_golden_queries

    labelled = load_golden_queries(path)
    corpus: dict[str, str] = {}
    chunks_of_doc: dict[str, set[str]] = {}
    for row in corpus_rows:
        cid = str(row["chunk_id"])
        corpus[cid] = str(row.get("embedding_text") or row.get("text") or row.get("positive"))
        chunks_of_doc.setdefault(str(row.get("doc_id")), set()).add(cid)
    relevant: dict[str, set[str]] = {}
    for qid, rels in labelled.qrels.items():
        for target, score in rels.items():
            if score <= 0:
                continue
            ids = {target} if labelled.level == "chunk" else chunks_of_doc.get(target, set())
            relevant.setdefault(qid, set()).update(ids)
    judged = sum(1 for q in labelled.qrels)
    found = EvalSet(name, labelled.queries, corpus, relevant, guard=True, level=labelled.level)
    if len(found.queries) < judged:
        found.notes.append(f"{judged - len(found.queries)} of {judged} golden queries name passages "
                           "outside the evaluated corpus and are left out")
    return found


def beir_eval_set(folder: str | Path, split: str, *, name: str | None = None, max_queries: int | None = None,
                  extra_corpus: int = 0) -> EvalSet:
    """A BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) at document level.

    With ``max_queries``, the first queries in id order and a corpus of their judged documents plus
    ``extra_corpus`` other documents (file order) as distractors: a deterministic subset."""
    from ragops.retrieval_eval import beir_labelled

    folder = Path(folder)
    if not (folder / "corpus.jsonl").exists():
        raise ValueError(f"BEIR folder {str(folder)!r} has no corpus.jsonl")
    labelled = beir_labelled(folder, split)
    qids = sorted(labelled.qrels)
    if max_queries is not None:
        qids = qids[:max_queries]
    relevant = {q: {d for d, r in labelled.qrels[q].items() if r > 0} for q in qids}
    wanted = set().union(*relevant.values()) if max_queries is not None else None
    corpus: dict[str, str] = {}
    extra = 0
    with (folder / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            did = str(doc["_id"])
            if wanted is not None and did not in wanted:
                if extra >= extra_corpus:
                    continue
                extra += 1
            corpus[did] = f"{doc.get('title') or ''} {doc.get('text') or ''}".strip()
    return EvalSet(name or f"beir-{folder.name}-{split}", {q: labelled.queries[q] for q in qids}, corpus,
                   relevant, guard=True, level="doc")


def _cached_evaluator_class() -> type:
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    class CachedIREvaluator(InformationRetrievalEvaluator):
        """Encodes each text list once per model at full size; every dim slices those vectors
        (exactly what ``truncate_dim`` does before the cosine similarity normalises)."""

        def __init__(self, *args: Any, cache: dict[Any, Any], **kwargs: Any):
            super().__init__(*args, **kwargs)
            self._cache = cache

        def embed_inputs(self, model: Any, sentences: Any, encode_fn_name: str | None = None,
                         prompt_name: str | None = None, prompt: str | None = None, **kwargs: Any) -> Any:
            key = (id(model), encode_fn_name, prompt_name, prompt, sha256_text("\x1e".join(sentences)))
            if key not in self._cache:
                encode = {"query": model.encode_query, "document": model.encode_document}.get(
                    encode_fn_name or "", model.encode)
                self._cache[key] = encode(list(sentences), prompt_name=prompt_name, prompt=prompt,
                                          batch_size=self.batch_size, show_progress_bar=False,
                                          convert_to_tensor=True, **kwargs)
            full = self._cache[key]
            return full[:, : self.truncate_dim] if self.truncate_dim else full

    return CachedIREvaluator


def _metric_name(key: str) -> str | None:
    """``cosine_ndcg@10`` -> ``ndcg@10`` (the score function's prefix dropped)."""
    for metric in ("ndcg@", "mrr@", "recall@", "accuracy@"):
        if metric in key:
            return key[key.index(metric):]
    return None


def evaluate_models(models: Mapping[str, str], dataset_test_split: Iterable[Mapping[str, Any]] | None,
                    dims: Sequence[int], ks: Sequence[int] = DEFAULT_KS, *,
                    guard_sets: Sequence[EvalSet] = (), chunks: Iterable[Mapping[str, Any]] = (),
                    batch_size: int = 64, device: str | None = None) -> dict[str, Any]:
    """Scores every model (label -> local model folder) on the same sets at every dim.

    Returns ``{"dims", "ks", "primary_set", "sets": {name: description}, "models": {label:
    {"path", "metrics": {set: {dim: {"ndcg@10", "mrr@10", "recall@k"...}}}}}}``; dims are string
    keys (JSON). Two labels with the same path are encoded once.
    """
    from sentence_transformers import SentenceTransformer

    sets: list[EvalSet] = []
    if dataset_test_split is not None:
        sets.append(split_eval_set(dataset_test_split, chunks=chunks))
    sets.extend(guard_sets)
    if not sets:
        raise ValueError("nothing to evaluate: no test split and no guard set")
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise ValueError(f"evaluation set names must be unique: {names}")
    dims = sorted({int(d) for d in dims}, reverse=True)
    ks = sorted({int(k) for k in ks})
    evaluator_cls = _cached_evaluator_class()
    cache: dict[Any, Any] = {}
    scored_by_path: dict[str, dict[str, Any]] = {}
    report_models: dict[str, Any] = {}
    distinct = len({str(p) for p in models.values()})
    with Progress("evaluate", total=distinct * sum(len(s.queries) for s in sets) * len(dims),
                  unit="queries") as progress:
        for label, path in models.items():
            path = str(path)
            if path not in scored_by_path:
                model = SentenceTransformer(path, device=device, local_files_only=True)
                full_dim = int(model.get_embedding_dimension())
                too_big = [d for d in dims if d > full_dim]
                if too_big:
                    raise ValueError(f"model {label!r} ({path}) has {full_dim} dims; cannot evaluate at {too_big}")
                per_set: dict[str, Any] = {}
                for eval_set in sets:
                    per_dim: dict[str, Any] = {}
                    for dim in dims:
                        evaluator = evaluator_cls(
                            eval_set.queries, eval_set.corpus, eval_set.relevant, cache=cache,
                            mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1], precision_recall_at_k=list(ks),
                            map_at_k=[max(ks)], batch_size=batch_size, name="", write_csv=False,
                            truncate_dim=None if dim == full_dim else dim,
                        )
                        raw = evaluator(model)
                        wanted = {"ndcg@10", "mrr@10", "accuracy@1", *(f"recall@{k}" for k in ks)}
                        per_dim[str(dim)] = {name: round(float(v), 6) for key, v in raw.items()
                                             if (name := _metric_name(key)) in wanted}
                        progress.update(len(eval_set.queries))
                    per_set[eval_set.name] = per_dim
                    log.info("%s on %s: nDCG@10 by dim %s", label, eval_set.name,
                             {d: m["ndcg@10"] for d, m in per_dim.items()})
                scored_by_path[path] = per_set
                for key in [k for k in cache if k[0] == id(model)]:
                    del cache[key]
                del model
            report_models[label] = {"path": path, "metrics": scored_by_path[path]}
    return {
        "dims": dims, "ks": ks, "primary_set": sets[0].name,
        "sets": {s.name: s.describe() for s in sets},
        "models": report_models,
    }


def model_report(report: Mapping[str, Any], label: str) -> dict[str, Any]:
    """One model's part of a report, in the shape the gate compares."""
    if label not in report["models"]:
        raise KeyError(f"the evaluation report has no model {label!r} (has {sorted(report['models'])})")
    return {"label": label, "primary_set": report["primary_set"], "dims": report["dims"],
            "guard_sets": [n for n, s in report["sets"].items() if s["guard"]],
            "metrics": report["models"][label]["metrics"]}


def chart_png(report: Mapping[str, Any], metric: str = "ndcg@10") -> bytes:
    """A PNG: one panel per evaluation set, ``metric`` by dim, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    set_names = list(report["sets"])
    fig, axes = plt.subplots(1, len(set_names), figsize=(5 * len(set_names), 4), squeeze=False)
    for ax, set_name in zip(axes[0], set_names):
        # A set may be scored at fewer dims than the report's (the served set: the full one only).
        scored = set().union(*(entry["metrics"][set_name] for entry in report["models"].values()))
        dims = [d for d in report["dims"] if str(d) in scored]
        for label, entry in report["models"].items():
            values = [entry["metrics"][set_name][str(d)][metric] for d in dims]
            ax.plot(dims, values, marker="o", label=label)
        ax.set_title(f"{set_name} ({report['sets'][set_name]['queries']} queries)")
        ax.set_xlabel("embedding dim")
        ax.set_ylabel(metric)
        ax.set_xticks(dims)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def save_report(report: Mapping[str, Any], artifacts: ArtifactStore, rel_dir: str) -> dict[str, str]:
    """Writes ``report.json`` and the chart under ``rel_dir`` of the artifact store; returns their URIs."""
    return {
        "report_uri": artifacts.write_json(f"{rel_dir}/{REPORT_FILE}", dict(report)),
        "chart_uri": artifacts.write_bytes(f"{rel_dir}/{CHART_FILE}", chart_png(report)),
        "report_rel": f"{rel_dir}/{REPORT_FILE}",
        "chart_rel": f"{rel_dir}/{CHART_FILE}",
    }
