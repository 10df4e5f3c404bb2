"""The dataset artifact: a Hugging Face ``DatasetDict`` (train, test), content-addressed.

Its identity is a hash over its rows, so identical inputs give the same version and a re-run
re-registers (upserts) instead of creating a new one. It is saved with ``save_to_disk`` and
copied into the artifact store under ``datasets/<hash>``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragops.hashing import deterministic_uuid, hash_object

DATASET_KIND = "dataset"
DATASET_NAME = "synthetic-queries"
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


def save_dataset(splits: dict[str, Sequence[dict[str, Any]]], artifacts: Any, content_hash: str) -> str:
    """Writes the DatasetDict to the store unless that version is already there; returns its rel path."""
    rel = dataset_rel(content_hash)
    if artifacts.exists(f"{rel}/dataset_dict.json"):
        return rel
    with tempfile.TemporaryDirectory(prefix="ragops-dataset-") as tmp:
        build_dataset_dict(splits).save_to_disk(str(Path(tmp) / "ds"))
        artifacts.upload_dir(Path(tmp) / "ds", rel)
    return rel


def load_dataset(artifacts: Any, rel: str) -> Any:
    """The DatasetDict at ``rel`` (held in memory, so the local copy can go)."""
    from datasets import load_from_disk

    with tempfile.TemporaryDirectory(prefix="ragops-dataset-") as tmp:
        local = artifacts.download_dir(rel, Path(tmp) / "ds")
        return load_from_disk(str(local), keep_in_memory=True)


def dataset_rows(artifacts: Any, rel: str) -> dict[str, list[dict[str, Any]]]:
    dd = load_dataset(artifacts, rel)
    return {name: dd[name].to_list() for name in SPLITS}


def rel_of_uri(artifacts: Any, uri: str) -> str:
    """The store-relative path of an artifact URI written by ``artifacts``."""
    prefix = artifacts.uri("x")[:-1]
    if not uri.startswith(prefix):
        raise ValueError(f"artifact URI {uri!r} is not inside the artifact store {artifacts.root_uri!r}")
    return uri[len(prefix):]


def split_stats(splits: dict[str, Sequence[dict[str, Any]]]) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    for name in SPLITS:
        rows = splits[name]
        stats[f"rows_{name}"] = len(rows)
        stats[f"docs_{name}"] = len({r["doc_id"] for r in rows})
        stats[f"negatives_{name}"] = sum(1 for r in rows if r.get("negative"))
    return stats
