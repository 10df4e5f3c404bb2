"""Labelled queries in: a team's labels become (or join) a version of the training dataset.

Teams often hold labelled queries already: golden sets, support questions with the page that
answered them, a BEIR qrels file. ``import_labels`` reads them, maps each label to a chunk of
the live collection, and records a dataset version of the same kind and name as the synthetic
ones (``synthetic-queries``: content-hashed, split by document, with lineage edges to the
labels file, the chunk set and, when merged, the version it extends):

- **Sources**: a BEIR qrels split (``<folder>/qrels/<split>.tsv`` with ``<folder>/queries.jsonl``,
  or the folder and a split), or a JSONL of ``{query, doc_id | chunk_id[, relevance]}``.
- **Document-level labels** map to the document's best-matching chunks: the ``chunks_per_doc``
  chunks of that document whose stored vectors score highest against the query under the live
  collection's own model (the dense score of the query path). Chunk-level labels are taken as
  they are. Labels naming no document or chunk of the collection are counted and dropped.
- **Label source**: every row records where its label came from in the ``label_source`` column
  (``synthetic``, ``reviewed``, ``imported``); rows of a merged base version keep theirs (a
  reviewed version's accepted and edited rows are ``reviewed``).
- **The split**: by document, as the synthetic split (``ragops.synthetic.split``): a document
  already in the base version stays on its side; a new document's side is a seeded hash of its
  id. A query whose documents fall on both sides keeps only its test rows (no query is trained
  on and tested on).
- **Hard negatives** (``hard_negatives=True``): each train row gets a passage the live collection
  ranks high for its query, from a document not labelled relevant to it and scoring below
  ``(1 - margin)`` x the positive's similarity. A row none of the first ``NEGATIVES_K`` candidates
  qualifies for is searched again down to ``NEGATIVES_MAX_K`` (a positive the model ranks low has
  every top hit within the margin); a row none qualifies for then leaves the train split (counted
  as ``no_negative``). On SciFact they lifted the finetune's dense retrieval on dev-eval (0.701 to
  0.719-0.722, against 0.713 without), though not the served hybrid on held-out claims
  (bench/README.md).

The rows carry every column the embedding finetune reads (``query``, ``positive``, ``negative``,
``doc_id``, ``chunk_id``), so ``rag_finetune_embeddings`` learns from such a version as from a
synthetic one; ``rag_train_reranker`` reads ``label_source`` for its guard sets.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragops.documents import embedding_text_of
from ragops.errors import InvalidInput
from ragops.hashing import hash_object, sha256_bytes
from ragops.records import Record
from ragops.synthetic.dataset import COLUMNS, SPLITS, dataset_rel, dataset_rows, query_id, split_stats
from ragops.synthetic.records import DatasetVersion
from ragops.synthetic.split import split_by_document, test_side_score
from ragops.vocabulary import DATASET_NAME, DEFAULT_ALIAS, ArtifactKind, LabelSource, Relation, Status

if TYPE_CHECKING:
    from ragops.retrieval_eval import LabelledQueries
    from ragops.services import Services

log = logging.getLogger(__name__)

LABEL_COLUMNS = (*COLUMNS, "label_source")
IMPORTED_KIND = "imported"            # the ``kind`` of an imported row (synthetic rows: llm | heading | ict)
DEFAULT_TEST_RATIO = 0.2
DEFAULT_SEED = 13                     # the synthetic dataset's default seed: documents keep their side
NEGATIVES_K = 50                      # candidates searched per labelled query for a hard negative
# Searched again, deeper, for the rows the first candidates had none for: a query whose positive the
# model ranks low has every top hit within the margin, and those are the rows training needs most.
NEGATIVES_MAX_K = 500
NEGATIVE_MARGIN = 0.05                # skip candidates within 5% of the positive's score (likely unlabelled answers)
FETCH_BATCH = 512


@dataclass(frozen=True)
class LabelsImport(Record):
    """A labels file imported as a dataset version (new, or merged into a base version)."""

    labels_id: int                     # the labels file's artifact (kind ``labels``)
    source: str                        # the file as given
    format: str                        # beir | jsonl
    level: str                         # doc | chunk
    queries: int                       # labelled queries read
    labels: int                        # relevant (query, target) pairs read
    rows: int                          # dataset rows made from them
    dropped: dict[str, int]            # why labels made no row: unknown_doc, unknown_chunk, straddling...
    collection: str                    # the collection version the labels were mapped on
    dataset: DatasetVersion
    merged_with: int | None = None     # the base dataset artifact, when merged
    label_sources: dict[str, int] | None = None   # rows per label source in the new version


# -- reading labels ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelFile:
    labelled: LabelledQueries
    format: str
    content_hash: str
    description: dict[str, Any]


def read_labels(source: str | Path, split: str | None = None) -> LabelFile:
    """A BEIR qrels file (``<folder>/qrels/<split>.tsv``), a BEIR folder with ``split``, or a
    JSONL of ``{query, doc_id | chunk_id[, relevance]}``."""
    from ragops.retrieval_eval import beir_labelled, load_golden_queries

    path = Path(source)
    if path.is_dir():
        if not split:
            raise InvalidInput(f"labels {str(path)!r} is a folder: name its qrels split (e.g. dev-train)")
        qrels_file, folder = path / "qrels" / f"{split}.tsv", path
    elif path.suffix == ".tsv":
        qrels_file, folder, split = path, path.parent.parent, path.stem
    elif path.suffix in (".jsonl", ".json"):
        if not path.is_file():
            raise InvalidInput(f"labels {str(path)!r}: no such file")
        data = path.read_bytes()
        try:
            labelled = load_golden_queries(path)
        except ValueError as exc:
            raise InvalidInput(f"labels {exc}") from None
        return LabelFile(labelled, "jsonl", sha256_bytes(data), {"path": str(path.resolve())})
    else:
        raise InvalidInput(f"labels {str(path)!r}: expected a BEIR qrels .tsv, a BEIR folder or a .jsonl file")
    if not qrels_file.is_file() or not (folder / "queries.jsonl").is_file():
        raise InvalidInput(f"labels {str(source)!r}: needs {qrels_file} and {folder / 'queries.jsonl'}")
    try:
        labelled = beir_labelled(folder, split)
    except ValueError as exc:
        raise InvalidInput(f"labels {str(source)!r}: {exc}") from None
    content = sha256_bytes(qrels_file.read_bytes() + b"\0" + (folder / "queries.jsonl").read_bytes())
    return LabelFile(labelled, "beir", content, {"path": str(qrels_file.resolve()), "folder": str(folder.resolve()),
                                                 "split": split})


# -- the collection's chunks ---------------------------------------------------------------------
@dataclass
class CollectionChunks:
    """The chunks of one collection version (from its chunk set), and how to score them."""

    collection: str
    collection_id: int | None
    chunk_set_id: int
    rows: dict[str, dict[str, Any]]          # chunk_id -> chunk row (chunk_id, doc_id, text, heading_path, position)
    by_doc: dict[str, list[str]]             # doc_id -> chunk ids in position order
    encode: Any                              # query encoder of the collection's model
    store: Any

    def vectors(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        ids = list(dict.fromkeys(chunk_ids))
        for start in range(0, len(ids), FETCH_BATCH):
            for obj in self.store.fetch(self.collection, ids[start:start + FETCH_BATCH], include_vectors=True):
                if obj.vector is not None:
                    out[obj.id] = np.asarray(obj.vector, dtype=np.float32)
        return out


def collection_chunks(svc: Services, alias: str) -> CollectionChunks:
    """The chunks of the collection ``alias`` points at, with its query encoder (the query path's)."""
    from ragops.retrieval import Retriever
    from ragops.retrieval.retriever import identity_reranker

    path = Retriever(svc, alias, cite=False, reranker_for=identity_reranker).current()
    if path.encode is None:
        raise InvalidInput(f"collection {alias!r}: labels are mapped with the collection's query encoder "
                           f"({path.encoder_problem})")
    art_id = path.version.artifact_id
    chunk_set = svc.registry.parent(art_id, Relation.EMBEDDED_FROM) if art_id else None
    if chunk_set is None:
        raise InvalidInput(f"collection {path.collection!r} records no chunk set in the lineage: labels cannot be mapped")
    table = svc.artifacts.read_table(svc.artifacts.rel_of(chunk_set.uri))
    wanted = [c for c in ("chunk_id", "doc_id", "text", "heading_path", "position") if c in table.column_names]
    rows: dict[str, dict[str, Any]] = {}
    by_doc: dict[str, list[tuple[int, str]]] = {}
    for row in table.select(wanted).to_pylist():
        rows[row["chunk_id"]] = row
        by_doc.setdefault(row["doc_id"], []).append((int(row.get("position") or 0), row["chunk_id"]))
    return CollectionChunks(path.collection, art_id, chunk_set.id, rows,
                            {d: [c for _, c in sorted(v)] for d, v in by_doc.items()}, path.encode, svc.store)


# -- labels -> rows ------------------------------------------------------------------------------
def label_rows(labelled: LabelledQueries, chunks: CollectionChunks, *, chunks_per_doc: int = 1
               ) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Dataset rows for the relevant labels: chunk labels as given, document labels on the
    document's ``chunks_per_doc`` best chunks by dense score. Returns the rows and the drop counts."""
    if chunks_per_doc < 1:
        raise InvalidInput(f"chunks_per_doc={chunks_per_doc} must be >= 1")
    dropped: Counter[str] = Counter()
    pairs: list[tuple[str, str]] = []   # (query id, target)
    for qid, rels in sorted(labelled.qrels.items()):
        for target, relevance in sorted(rels.items()):
            if relevance <= 0:
                dropped["not_relevant"] += 1
                continue
            known = chunks.rows if labelled.level == "chunk" else chunks.by_doc
            if target not in known:
                dropped["unknown_chunk" if labelled.level == "chunk" else "unknown_doc"] += 1
                continue
            pairs.append((qid, target))
    chosen: dict[tuple[str, str], list[str]] = {}
    if labelled.level == "chunk":
        chosen = {(q, t): [t] for q, t in pairs}
    else:
        multi = [(q, t) for q, t in pairs if len(chunks.by_doc[t]) > chunks_per_doc]
        scored = set(multi)
        chosen = {(q, t): chunks.by_doc[t][:chunks_per_doc] for q, t in pairs if (q, t) not in scored}
        if multi:
            qids = sorted({q for q, _ in multi})
            qvec = dict(zip(qids, np.asarray(chunks.encode([labelled.queries[q] for q in qids]), dtype=np.float32),
                            strict=True))
            vectors = chunks.vectors([c for _, t in multi for c in chunks.by_doc[t]])
            for q, t in multi:
                cands = [c for c in chunks.by_doc[t] if c in vectors]
                if not cands:
                    dropped["no_vectors"] += 1
                    continue
                scores = np.stack([vectors[c] for c in cands]) @ qvec[q]
                order = np.argsort(-scores, kind="stable")[:chunks_per_doc]
                chosen[(q, t)] = [cands[i] for i in order]
    rows = []
    for (qid, _target), chunk_ids in sorted(chosen.items()):
        text = labelled.queries[qid]
        for cid in chunk_ids:
            chunk = chunks.rows[cid]
            rows.append({"query_id": query_id(cid, text), "query": text, "positive": embedding_text_of(chunk),
                         "negative": None, "doc_id": chunk["doc_id"], "chunk_id": cid, "kind": IMPORTED_KIND,
                         "label_source": LabelSource.IMPORTED.value})
    return rows, dropped


def label_sources_of(svc: Services, dataset_id: int, splits: Mapping[str, Sequence[dict[str, Any]]]
                     ) -> dict[str, list[dict[str, Any]]]:
    """A dataset version's rows with ``label_source`` set: kept where the version records it, else
    ``imported`` for imported rows, ``reviewed`` for the rows its review file accepted or edited,
    ``synthetic`` for the rest."""
    reviewed_ids, edited = _reviewed(svc, dataset_id)
    out: dict[str, list[dict[str, Any]]] = {}
    for name in SPLITS:
        rows = []
        for row in splits[name]:
            source = row.get("label_source")
            if not source:
                if row.get("kind") == IMPORTED_KIND:
                    source = LabelSource.IMPORTED
                elif row.get("query_id") in reviewed_ids or row.get("query") in edited:
                    source = LabelSource.REVIEWED
                else:
                    source = LabelSource.SYNTHETIC
            rows.append({**{c: row.get(c) for c in COLUMNS}, "label_source": str(source)})
        out[name] = rows
    return out


def _reviewed(svc: Services, dataset_id: int) -> tuple[set[str], set[str]]:
    """Ids a version's review file accepted, and the queries it wrote (edits)."""
    from ragops.synthetic.review import _records

    review = svc.registry.parent(dataset_id, Relation.LABELS)
    if review is None:
        return set(), set()
    try:
        rel = svc.artifacts.rel_of(review.uri)
        records = _records(svc.artifacts.read_bytes(rel), rel)
    except (OSError, ValueError) as exc:
        log.warning("review file of dataset %s unreadable (%s): its rows count as synthetic", dataset_id, exc)
        return set(), set()
    accepted = {str(r.get("id")) for _, r in records if str(r.get("decision") or "").strip().lower() == "accept"}
    edited = {str(r.get("edited_query") or "").strip() for _, r in records
              if str(r.get("decision") or "").strip().lower() == "edit"}
    return accepted, edited - {""}


def merge_split(imported: Sequence[dict[str, Any]], base: Mapping[str, Sequence[dict[str, Any]]] | None, *,
                test_ratio: float = DEFAULT_TEST_RATIO, seed: int = DEFAULT_SEED
                ) -> tuple[dict[str, list[dict[str, Any]]], Counter[str]]:
    """Train and test rows: the base version's rows where they were, imported rows by document
    (a base document keeps its side; a new one goes by a seeded hash of its id). A query on both
    sides keeps only its test rows; a row already in the base (same query id) is not added twice."""
    dropped: Counter[str] = Counter()
    base = base or {name: [] for name in SPLITS}
    side = {r["doc_id"]: name for name in SPLITS for r in base[name]}
    seen = {r["query_id"] for name in SPLITS for r in base[name]}
    fresh = []
    for row in imported:
        if row["query_id"] in seen:
            dropped["already_in_base"] += 1
            continue
        seen.add(row["query_id"])
        fresh.append(row)
    if not any(base[name] for name in SPLITS):
        train, test = split_by_document(fresh, test_ratio=test_ratio, seed=seed)
    else:
        train, test = [], []
        for row in fresh:
            where = side.get(row["doc_id"]) or ("test" if test_side_score(row["doc_id"], seed) < test_ratio else "train")
            (test if where == "test" else train).append(row)
    splits = {"train": [*base["train"], *train], "test": [*base["test"], *test]}
    tested = {r["query"] for r in splits["test"]}
    kept = [r for r in splits["train"] if r["query"] not in tested]
    dropped["straddling"] += len(splits["train"]) - len(kept)
    splits["train"] = kept
    return {name: sorted(rows, key=lambda r: (r["doc_id"], r["chunk_id"], r["query"])) for name, rows in splits.items()}, \
        dropped


def with_hard_negatives(rows: Sequence[dict[str, Any]], chunks: CollectionChunks, labelled: LabelledQueries, *,
                        margin: float = NEGATIVE_MARGIN) -> tuple[list[dict[str, Any]], int]:
    """Rows given a hard negative from the collection: never a document labelled relevant to the
    query, never a passage within ``margin`` of the positive's score. Rows that had one keep it;
    rows none is found for are left out. Returns the rows and how many were left out."""
    from types import SimpleNamespace

    from ragops.synthetic.negatives import mine_hard_negatives, store_searcher

    if not 0.0 <= margin < 1.0:
        raise InvalidInput(f"negative_margin={margin} must lie in [0, 1)")
    needed = [r for r in rows if not r.get("negative")]
    if not needed:
        return list(rows), 0
    relevant = {labelled.queries.get(q): {d for d, grade in docs.items() if grade > 0}
                for q, docs in labelled.qrels.items()}
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    found_per_pass: list[int] = []   # the first search, then the deeper one for the rows left
    for k in dict.fromkeys((NEGATIVES_K, max(NEGATIVES_K, NEGATIVES_MAX_K))):
        if not needed:
            break
        mined, got = mine_hard_negatives(
            needed, SimpleNamespace(encode=chunks.encode), store_searcher(chunks.store, chunks.collection),
            k=k, relative_margin=margin, positive_vectors=chunks.vectors([r["chunk_id"] for r in needed]),
            excluded=lambda r: relevant.get(r["query"], set()))
        by_key.update({(r["query_id"], r["chunk_id"]): r for r in mined})
        found_per_pass.append(got)
        needed = [r for r in mined if not r.get("negative")]
    kept = [row for r in rows if (row := by_key.get((r["query_id"], r["chunk_id"]), r)).get("negative")]
    log.info("hard negatives: %d train rows got one (%d of them from the deeper search to %d, margin %.2f); "
             "%d found none and left the train split", sum(found_per_pass), sum(found_per_pass[1:]),
             NEGATIVES_MAX_K, margin, len(needed))
    return kept, len(needed)


# -- the dataset version -------------------------------------------------------------------------
def labelled_hash(splits: Mapping[str, Sequence[dict[str, Any]]]) -> str:
    return hash_object({name: [[row.get(c) for c in LABEL_COLUMNS] for row in splits[name]] for name in SPLITS})


def save_labelled(splits: Mapping[str, Sequence[dict[str, Any]]], svc: Services, content_hash: str) -> str:
    """The DatasetDict (the synthetic columns plus ``label_source``) in the store; returns its rel path."""
    from datasets import Dataset, DatasetDict, Features, Value

    rel = dataset_rel(content_hash)
    if svc.artifacts.dir_complete(rel):
        return rel
    features = Features({c: Value("string") for c in LABEL_COLUMNS})
    dd = DatasetDict({name: Dataset.from_list([{c: r.get(c) for c in LABEL_COLUMNS} for r in splits[name]],
                                              features=features) for name in SPLITS})
    with tempfile.TemporaryDirectory(prefix="ragops-labels-") as tmp:
        dd.save_to_disk(str(Path(tmp) / "ds"))
        svc.artifacts.upload_dir(Path(tmp) / "ds", rel)
    return rel


def base_version(svc: Services, merge_with: int | str | None) -> Any:
    """The dataset artifact to merge into: ``latest`` (the latest usable version, if any), a
    version number, or None (a version of the labels alone)."""
    if merge_with in (None, "", "none", 0):
        return None
    if merge_with == "latest":
        usable = svc.registry.list_artifacts(ArtifactKind.DATASET, DATASET_NAME, status=Status.USABLE)
        return usable[-1] if usable else None
    try:
        version = int(merge_with)
    except (TypeError, ValueError):
        raise InvalidInput(f"merge_with={merge_with!r}: expected latest, none or a dataset version") from None
    art = svc.registry.find_artifact(ArtifactKind.DATASET, DATASET_NAME, version=version)
    if art is None or art.status != Status.USABLE:
        raise InvalidInput(f"merge_with={merge_with!r}: no usable version {version} of dataset {DATASET_NAME!r}")
    return art


def import_labels(svc: Services, source: str, *, alias: str = DEFAULT_ALIAS, split: str | None = None,
                  merge_with: int | str | None = "latest", chunks_per_doc: int = 1,
                  test_ratio: float = DEFAULT_TEST_RATIO, seed: int = DEFAULT_SEED, hard_negatives: bool = False,
                  negative_margin: float = NEGATIVE_MARGIN, run_key: str | None = None) -> LabelsImport:
    """Reads ``source``, maps its labels onto the live collection ``alias``, and records the
    result (alone, or merged into ``merge_with``) as a usable version of the training dataset.

    ``hard_negatives``: each train row without a negative gets one mined from the collection
    (``with_hard_negatives``); a row none can be found for leaves the train split, counted in
    ``dropped["no_negative"]``, since the trainer takes triplets only when every row has one."""
    found = read_labels(source, split)
    chunks = collection_chunks(svc, alias)
    imported, dropped = label_rows(found.labelled, chunks, chunks_per_doc=chunks_per_doc)
    if not imported:
        raise InvalidInput(f"labels {source!r}: none of {sum(len(r) for r in found.labelled.qrels.values())} labels "
                           f"names a document or chunk of collection {chunks.collection!r} ({dict(dropped)})")
    base = base_version(svc, merge_with)
    base_rows = label_sources_of(svc, base.id, dataset_rows(svc.artifacts, svc.artifacts.rel_of(base.uri))) \
        if base is not None else None
    splits, split_dropped = merge_split(imported, base_rows, test_ratio=test_ratio, seed=seed)
    dropped.update(split_dropped)
    if hard_negatives:
        splits["train"], dropped["no_negative"] = with_hard_negatives(splits["train"], chunks, found.labelled,
                                                                      margin=negative_margin)
    if not splits["train"] or not splits["test"]:
        raise InvalidInput(f"labels {source!r}: the split by document left the "
                           f"{'train' if not splits['train'] else 'test'} split empty "
                           f"({len({r['doc_id'] for r in imported})} labelled documents)")
    labels_art = svc.registry.record_artifact(
        ArtifactKind.LABELS, DATASET_NAME, found.content_hash, found.description["path"],
        params={"format": found.format, **found.description, "level": found.labelled.level},
        metrics={"queries": len(found.labelled.queries),
                 "labels": sum(1 for r in found.labelled.qrels.values() for v in r.values() if v > 0)},
        status=Status.APPLIED, run_key=run_key)
    content_hash = labelled_hash(splits)
    rel = save_labelled(splits, svc, content_hash)
    sources = Counter(r["label_source"] for name in SPLITS for r in splits[name])
    parents = [(labels_art.id, Relation.IMPORTED_FROM), (chunks.chunk_set_id, Relation.GENERATED_FROM)]
    if base is not None:
        parents.append((base.id, Relation.EXTENDS))
    before = svc.registry.find_artifact(ArtifactKind.DATASET, DATASET_NAME, content_hash=content_hash)
    art = svc.registry.record_artifact(
        ArtifactKind.DATASET, DATASET_NAME, content_hash, svc.artifacts.uri(rel),
        params={"generator": "imported", "labels_id": labels_art.id, "labels_format": found.format,
                "labels_level": found.labelled.level, "collection": chunks.collection,
                "chunk_set_id": chunks.chunk_set_id, "chunks_per_doc": chunks_per_doc, "test_ratio": test_ratio,
                "seed": seed, "merged_with": base.id if base else None, "columns": list(LABEL_COLUMNS),
                "hard_negatives": {"k": NEGATIVES_K, "max_k": NEGATIVES_MAX_K, "margin": negative_margin} if hard_negatives else None},
        metrics={**split_stats(splits), "label_sources": dict(sources), "imported_rows": len(imported),
                 "dropped": dict(dropped)},
        status=Status.USABLE, run_key=run_key, parents=parents)
    new_version = before is None or before.status != Status.USABLE
    dataset = DatasetVersion(art.id, art.version, art.content_hash, art.uri, Status.USABLE, new_version,
                             len(splits["train"]), len(splits["test"]))
    log.info("labels %s: %d rows on %s -> dataset %s v%s (train %d, test %d; sources %s; dropped %s)", source,
             len(imported), chunks.collection, DATASET_NAME, art.version, dataset.rows_train, dataset.rows_test,
             dict(sources), dict(dropped))
    return LabelsImport(labels_art.id, str(source), found.format, found.labelled.level,
                        len(found.labelled.queries), sum(1 for r in found.labelled.qrels.values() for v in r.values()
                                                         if v > 0),
                        len(imported), dict(dropped), chunks.collection, dataset, base.id if base else None,
                        dict(sources))
