"""Tiny, real training data for the training tests: SciFact claims and the abstracts they cite.

The dataset has the synthetic-data contract (a DatasetDict with train/test splits and columns
query, positive, negative, doc_id, chunk_id), saved with ``save_to_disk`` like the real one.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

SCIFACT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "scifact-dev"


def scifact_pairs(limit: int, offset: int = 0, text_chars: int = 400) -> list[dict[str, str]]:
    """(claim, cited abstract) rows, one per claim, in file order: deterministic."""
    corpus = {}
    with (SCIFACT / "corpus.jsonl").open() as fh:
        for line in fh:
            doc = json.loads(line)
            corpus[doc["_id"]] = f"{doc['title']} {doc['text']}"[:text_chars]
    queries = {}
    with (SCIFACT / "queries.jsonl").open() as fh:
        for line in fh:
            q = json.loads(line)
            queries[q["_id"]] = q["text"]
    rows, seen = [], set()
    with (SCIFACT / "qrels" / "train.tsv").open() as fh:
        for rec in csv.DictReader(fh, delimiter="\t"):
            qid, cid = rec["query-id"], rec["corpus-id"]
            if qid in seen or cid not in corpus or any(r["doc_id"] == cid for r in rows):
                continue
            seen.add(qid)
            rows.append({"query": queries[qid], "positive": corpus[cid], "negative": "",
                         "doc_id": cid, "chunk_id": f"{cid}#0"})
    return rows[offset:offset + limit]


def save_pairs_dataset(path: Path, train_rows: int = 40, test_rows: int = 16, negatives: bool = False) -> Path:
    """A DatasetDict (train, test) of SciFact pairs saved with save_to_disk at ``path``."""
    from datasets import Dataset, DatasetDict

    rows = scifact_pairs(train_rows + test_rows)
    if negatives:  # the next row's abstract: a plausible but wrong passage
        for i, row in enumerate(rows):
            row["negative"] = rows[(i + 1) % len(rows)]["positive"]
    DatasetDict({
        "train": Dataset.from_list(rows[:train_rows]),
        "test": Dataset.from_list(rows[train_rows:]),
    }).save_to_disk(str(path))
    return path


def save_broken_model(base_model_path: str, target: Path) -> Path:
    """The base model with its word embeddings shuffled (seeded): a real model that retrieves badly."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(base_model_path, device="cpu", local_files_only=True)
    embeddings = model[0].auto_model.get_input_embeddings()
    order = torch.randperm(embeddings.weight.shape[0], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        embeddings.weight.copy_(embeddings.weight[order])
    model.save_pretrained(str(target))
    return target
