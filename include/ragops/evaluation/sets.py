"""The evaluation sets the registry knows, their registration, and reading one.

- **golden**: the ``golden_queries`` file of the rag_index run that built the live collection (its
  gate's file), and any golden file registered with ``python -m ragops register-eval-set --golden``;
- **review**, **imported**, **synthetic**: the test split of the latest usable training dataset, by
  each row's label source (held out from training, as rag_train_reranker's guard sets);
- **beir**: a BEIR qrels split registered with ``register-eval-set --beir <folder> --split <split>``
  (the collection must hold that corpus).

A registration is an artifact of kind ``eval_set`` (name = the set's name) holding the file or
folder URI and its content hash. A run reads a registered path only inside the allowed roots
(``Services.allowed_path``): a set outside them is skipped, named, and nothing of it is read.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragops.errors import InvalidInput
from ragops.evaluation.records import EvalSetRef
from ragops.hashing import hash_many, hash_object, sha256_bytes
from ragops.vocabulary import DATASET_NAME, ArtifactKind, EvalSetKind, LabelSource, Status

if TYPE_CHECKING:
    from ragops.lineage import Artifact
    from ragops.retrieval_eval import LabelledQueries
    from ragops.services import Services

log = logging.getLogger(__name__)

# Dataset sets: the test split's rows by label source, and the name each set takes.
DATASET_SETS = {EvalSetKind.SYNTHETIC: (LabelSource.SYNTHETIC, "synthetic-test"),
                EvalSetKind.REVIEW: (LabelSource.REVIEWED, "review"),
                EvalSetKind.IMPORTED: (LabelSource.IMPORTED, "imported-test")}
DATASET_SPLIT = "test"


# -- registration --------------------------------------------------------------------------------
def file_hash(path: Path) -> str:
    return sha256_bytes(path.read_bytes())


def beir_hash(folder: Path, split: str) -> str:
    """A BEIR split's content: its queries file and its qrels file (the corpus is the collection's)."""
    return hash_many([file_hash(folder / "queries.jsonl"), file_hash(folder / "qrels" / f"{split}.tsv")])


def register_eval_set(svc: Services, *, beir: str | None = None, split: str | None = None, golden: str | None = None,
                      name: str | None = None, run_key: str | None = None) -> Artifact:
    """Registers a BEIR qrels split or a golden queries file as an ``eval_set`` artifact (its
    queries are parsed first: a file rag_evaluate could not read is refused now)."""
    from ragops.retrieval_eval import beir_labelled, load_golden_queries

    if bool(beir) == bool(golden):
        raise InvalidInput("register-eval-set: give exactly one of --beir <folder> (with --split) or --golden <file>")
    if beir:
        if not split:
            raise InvalidInput("register-eval-set: --beir needs --split (the qrels split: test, dev...)")
        folder = Path(svc.allowed_path("beir", beir)).resolve()
        labelled = beir_labelled(folder, split)
        kind, uri, content_hash = EvalSetKind.BEIR, str(folder), beir_hash(folder, split)
        name = name or f"beir-{folder.name}-{split}"
    else:
        path = Path(svc.allowed_path("golden", str(golden))).resolve()
        labelled = load_golden_queries(path)
        kind, uri, content_hash = EvalSetKind.GOLDEN, str(path), file_hash(path)
        name = name or f"golden-{path.stem}"
    return svc.registry.record_artifact(
        ArtifactKind.EVAL_SET, name, content_hash, uri,
        params={"kind": kind.value, "path": uri, "split": split if beir else None, "level": labelled.level},
        metrics={"queries": len(labelled.queries)}, status=Status.USABLE, run_key=run_key)


# -- discovery -----------------------------------------------------------------------------------
def known_sets(svc: Services, kinds: set[EvalSetKind], collection_run_key: str | None
               ) -> tuple[list[EvalSetRef], dict[str, str]]:
    """The sets of the wanted kinds, and the ones skipped with the reason (nothing of those is read)."""
    sets: list[EvalSetRef] = []
    skipped: dict[str, str] = {}
    if EvalSetKind.GOLDEN in kinds:
        gate_file = _gate_golden_file(svc, collection_run_key)
        if gate_file:
            _add_file_set(svc, sets, skipped, "golden", EvalSetKind.GOLDEN, gate_file, None, None)
    for art in _registered(svc):
        kind = EvalSetKind(art.params.get("kind", EvalSetKind.GOLDEN))
        if kind in kinds and not any(s.uri == art.uri and s.split == art.params.get("split") for s in sets):
            _add_file_set(svc, sets, skipped, art.name, kind, art.uri, art.params.get("split"), art)
    wanted = [k for k in DATASET_SETS if k in kinds]
    if wanted:
        sets += _dataset_sets(svc, wanted)
    return sets, skipped


def _gate_golden_file(svc: Services, run_key: str | None) -> str | None:
    """The golden queries file the live collection's rag_index run gated with (if any)."""
    run = svc.registry.get_run(run_key) if run_key else None
    value = ((run or {}).get("params") or {}).get("golden_queries")
    return str(value) if value else None


def _registered(svc: Services) -> list[Artifact]:
    """The latest registration of each eval_set name."""
    latest: dict[str, Artifact] = {}
    for art in svc.registry.list_artifacts(ArtifactKind.EVAL_SET, status=Status.USABLE):
        latest[art.name] = art      # listed by name, then version: the last one wins
    return list(latest.values())


def _add_file_set(svc: Services, sets: list[EvalSetRef], skipped: dict[str, str], name: str, kind: EvalSetKind,
                  uri: str, split: str | None, art: Artifact | None) -> None:
    try:
        path = Path(svc.allowed_path(f"eval set {name}", uri))
        current = beir_hash(path, split or "test") if kind == EvalSetKind.BEIR else file_hash(path)
    except (InvalidInput, OSError) as exc:
        skipped[name] = str(exc).splitlines()[0][:300]
        log.warning("evaluation set %s skipped: %s", name, skipped[name])
        return
    if art is not None and current != art.content_hash:
        log.warning("evaluation set %s changed since it was registered (v%s): evaluating its current content",
                    name, art.version)
    level = str(art.params.get("level", "doc")) if art is not None else _golden_level(path)
    sets.append(EvalSetRef(name, kind.value, str(path), level, current, split, None, art.id if art else None))


def _golden_level(path: Path) -> str:
    from ragops.retrieval_eval import load_golden_queries

    return load_golden_queries(path).level


def _dataset_sets(svc: Services, kinds: list[EvalSetKind]) -> list[EvalSetRef]:
    usable = svc.registry.list_artifacts(ArtifactKind.DATASET, DATASET_NAME, status=Status.USABLE)
    if not usable:
        return []
    art = usable[-1]
    rows = _test_rows(svc, art)
    out = []
    for kind in kinds:
        source, name = DATASET_SETS[kind]
        if any(r["label_source"] == source for r in rows):
            level = "doc" if kind == EvalSetKind.IMPORTED else "chunk"
            out.append(EvalSetRef(name, kind.value, art.uri, level, art.content_hash, DATASET_SPLIT, source.value,
                                  art.id))
    return out


def _test_rows(svc: Services, art: Artifact) -> list[dict[str, Any]]:
    from ragops.labels import label_sources_of
    from ragops.synthetic.dataset import dataset_rows

    splits = label_sources_of(svc, art.id, dataset_rows(svc.artifacts, svc.artifacts.rel_of(art.uri)))
    return [r for r in splits[DATASET_SPLIT] if r.get("query") and r.get("chunk_id")]


# -- reading one ---------------------------------------------------------------------------------
def load_set(svc: Services, ref: EvalSetRef, max_queries: int | None = None, seed: int = 0) -> LabelledQueries:
    """A set's queries and judgements (a seeded sample of ``max_queries`` when it has more)."""
    from ragops.retrieval_eval import LabelledQueries, beir_labelled, load_golden_queries

    if ref.kind == EvalSetKind.BEIR:
        labelled = beir_labelled(svc.allowed_path(f"eval set {ref.name}", ref.uri), ref.split or "test")
    elif ref.kind == EvalSetKind.GOLDEN:
        labelled = load_golden_queries(svc.allowed_path(f"eval set {ref.name}", ref.uri))
    else:
        labelled = rows_labelled([r for r in _test_rows(svc, _artifact(svc, ref))
                                  if r["label_source"] == ref.label_source], ref.level)
    if max_queries and len(labelled.queries) > max_queries:
        keep = sorted(random.Random(seed).sample(sorted(labelled.queries), max_queries))
        labelled = LabelledQueries({q: labelled.queries[q] for q in keep}, {q: labelled.qrels[q] for q in keep},
                                   labelled.level)
    return labelled


def rows_labelled(rows: list[dict[str, Any]], level: str) -> LabelledQueries:
    """Dataset rows as labelled queries: one query per distinct text, judged at chunk or document level."""
    from ragops.retrieval_eval import LabelledQueries

    key = "doc_id" if level == "doc" else "chunk_id"
    queries = {_qid(r["query"]): r["query"] for r in rows}
    qrels: dict[str, dict[str, int]] = {}
    for r in rows:
        qrels.setdefault(_qid(r["query"]), {})[str(r[key])] = 1
    return LabelledQueries(queries, qrels, level)


def _qid(query: str) -> str:
    return "q" + hash_object(["query", query])[:16]


def _artifact(svc: Services, ref: EvalSetRef) -> Artifact:
    art = svc.registry.get_artifact(int(ref.artifact_id or 0))
    if art is None:
        raise InvalidInput(f"evaluation set {ref.name}: dataset artifact {ref.artifact_id} is gone")
    return art
