"""The dataset artifact: a Hugging Face ``DatasetDict`` (train, test), content-addressed.

Its identity is a hash over its rows, so identical inputs give the same version and a re-run
re-registers (upserts) instead of creating a new one. It is saved with ``save_to_disk`` and
copied into the artifact store under ``datasets/<hash>``. The steps' intermediate tables
(samples, queries, splits) are parquet files in the same store (``read_rows``/``write_rows``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragops.hashing import deterministic_uuid, hash_object
from ragops.vocabulary import DATASET_NAME, ArtifactKind, Relation, Status

if TYPE_CHECKING:
    from ragops.artifacts import ArtifactStore
    from ragops.services import Services
    from ragops.synthetic.records import DatasetVersion

SPLITS = ("train", "test")
# query_id: stable id of a (chunk, query) pair (review files refer to it); kind: llm | heading | ict | edited
COLUMNS = ("query_id", "query", "positive", "negative", "doc_id", "chunk_id", "kind")


def query_id(chunk_id: str, query: str) -> str:
    return deterministic_uuid("synthetic-query", chunk_id, query)


def to_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Dataset rows in a canonical order (by chunk, then query) with exactly ``COLUMNS``."""
    rows = [{"query_id": r.get("query_id") or query_id(r["chunk_id"], r["query"]), "query": r["query"],
             "positive": r["positive"], "negative": r.get("negative"), "doc_id": r["doc_id"],
             "chunk_id": r["chunk_id"], "kind": r.get("kind") or "llm"} for r in records]
    return sorted(rows, key=lambda r: (r["doc_id"], r["chunk_id"], r["query"]))


def dataset_hash(splits: dict[str, Sequence[dict[str, Any]]]) -> str:
    return hash_object({name: [[row[c] for c in COLUMNS] for row in splits[name]] for name in SPLITS})


def build_dataset_dict(splits: dict[str, Sequence[dict[str, Any]]]) -> Any:
    from datasets import Dataset, DatasetDict, Features, Value

    features = Features({c: Value("string") for c in COLUMNS})
    return DatasetDict({name: Dataset.from_list([dict(r) for r in splits[name]], features=features)
                        for name in SPLITS})


def dataset_rel(content_hash: str) -> str:
    return f"datasets/{content_hash}"


def save_dataset(splits: dict[str, Sequence[dict[str, Any]]], artifacts: ArtifactStore, content_hash: str) -> str:
    """Writes the DatasetDict to the store unless that version is already there; returns its rel path."""
    rel = dataset_rel(content_hash)
    if artifacts.dir_complete(rel):  # published whole (manifest verified), not merely begun
        return rel
    with tempfile.TemporaryDirectory(prefix="ragops-dataset-") as tmp:
        build_dataset_dict(splits).save_to_disk(str(Path(tmp) / "ds"))
        artifacts.upload_dir(Path(tmp) / "ds", rel)
    return rel


def load_dataset(artifacts: ArtifactStore, rel: str) -> Any:
    """The DatasetDict at ``rel`` (held in memory, so the local copy can go)."""
    from datasets import load_from_disk

    with tempfile.TemporaryDirectory(prefix="ragops-dataset-") as tmp:
        local = artifacts.download_dir(rel, Path(tmp) / "ds")
        return load_from_disk(str(local), keep_in_memory=True)


def dataset_rows(artifacts: ArtifactStore, rel: str) -> dict[str, list[dict[str, Any]]]:
    dd = load_dataset(artifacts, rel)
    return {name: dd[name].to_list() for name in SPLITS}


def split_stats(splits: dict[str, Sequence[dict[str, Any]]]) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    for name in SPLITS:
        rows = splits[name]
        stats[f"rows_{name}"] = len(rows)
        stats[f"docs_{name}"] = len({r["doc_id"] for r in rows})
        stats[f"negatives_{name}"] = sum(1 for r in rows if r.get("negative"))
    return stats


# -- the steps' tables ---------------------------------------------------------------------------
def read_rows(artifacts: ArtifactStore, uri: str) -> list[dict[str, Any]]:
    return artifacts.read_table(artifacts.rel_of(uri)).to_pylist()


def write_rows(artifacts: ArtifactStore, rel: str, rows: Sequence[dict[str, Any]]) -> str:
    """Writes rows as a parquet table (an empty one keeps a ``chunk_id`` column); returns its URI."""
    import pyarrow as pa

    table = pa.Table.from_pylist(list(rows)) if rows else pa.table({"chunk_id": pa.array([], pa.string())})
    return artifacts.write_table(rel, table)


def splits_of(artifacts: ArtifactStore, uri: str) -> dict[str, list[dict[str, Any]]]:
    """The train and test rows of a split table (one table with a ``split`` column)."""
    table = artifacts.read_table(artifacts.rel_of(uri))
    rows = table.to_pylist() if "split" in table.column_names else []
    return {name: [{c: r.get(c) for c in COLUMNS} for r in rows if r["split"] == name] for name in SPLITS}


# -- a version in the registry ------------------------------------------------------------------
def record_version(svc: Services, splits: dict[str, Sequence[dict[str, Any]]], content_hash: str, *, usable: bool,
                   params: dict[str, Any], metrics: dict[str, Any], parents: list[tuple[int, Relation]],
                   run_key: str | None, name: str = DATASET_NAME) -> DatasetVersion:
    """Saves the DatasetDict (unless that content is saved already) and records it, ``usable`` or
    ``failed_dq``. ``new_version`` is true only the first time this content is registered as
    usable: the dataset asset is emitted on that alone."""
    from ragops.synthetic.records import DatasetVersion

    rel = save_dataset(splits, svc.artifacts, content_hash)
    before = svc.registry.find_artifact(ArtifactKind.DATASET, name, content_hash=content_hash)
    status = Status.USABLE if usable else Status.FAILED_DQ
    art = svc.registry.record_artifact(ArtifactKind.DATASET, name, content_hash, svc.artifacts.uri(rel),
                                       params=params, metrics=metrics, status=status, run_key=run_key,
                                       parents=parents)
    new_version = usable and (before is None or before.status != Status.USABLE)
    return DatasetVersion(art.id, art.version, art.content_hash, art.uri, status, new_version,
                          len(splits["train"]), len(splits["test"]))
