"""Human review: export a sample to label, import the labels into a new dataset version.

The review file has one row per sampled query with the columns ``id, query, positive, decision,
edited_query`` (JSONL or CSV). Reviewers fill ``decision`` with ``accept``, ``reject`` or
``edit`` (then ``edited_query`` holds the new query); a blank decision means "not reviewed" and
leaves the row as it is. Import drops rejected rows, rewrites edited ones, and the result is a
new content-hashed dataset version whose parents are the source dataset and the label file
(``import_review``, the step of a run in import mode).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ragops.errors import InvalidInput
from ragops.hashing import hash_object, sha256_bytes, short
from ragops.synthetic.dataset import SPLITS, dataset_hash, dataset_rows, query_id, record_version, split_stats, to_rows
from ragops.vocabulary import ArtifactKind, Relation, Status

if TYPE_CHECKING:
    from ragops.runs import RunRef
    from ragops.services import Services
    from ragops.synthetic.params import SyntheticParams
    from ragops.synthetic.records import ReviewImport

REVIEW_COLUMNS = ("id", "query", "positive", "decision", "edited_query")
DECISIONS = ("accept", "reject", "edit")
FORMATS = ("jsonl", "csv")


class ReviewFileError(InvalidInput):
    """A label file that cannot be applied; the message names the file and the line."""


def review_sample(splits: dict[str, Sequence[dict[str, Any]]], size: int, seed: int = 0) -> list[dict[str, Any]]:
    rows = [r for name in SPLITS for r in splits[name]]
    picked = sorted(rows, key=lambda r: hash_object(["review", seed, r["query_id"]]))[:size]
    return [{"id": r["query_id"], "query": r["query"], "positive": r["positive"], "decision": "",
             "edited_query": ""} for r in picked]


def render_review_file(sample: Sequence[dict[str, Any]], fmt: str = "jsonl") -> bytes:
    if fmt not in FORMATS:
        raise InvalidInput(f"review format {fmt!r} is not one of {FORMATS}")
    if fmt == "jsonl":
        return "".join(json.dumps({c: row[c] for c in REVIEW_COLUMNS}, ensure_ascii=False) + "\n"
                       for row in sample).encode()
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=REVIEW_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: row[c] for c in REVIEW_COLUMNS} for row in sample)
    return buf.getvalue().encode()


def _records(data: bytes, name: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) pairs of a JSONL or CSV label file."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReviewFileError(f"{name}: not UTF-8 text ({exc})") from exc
    if name.endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        missing = {"id", "decision", "edited_query"} - set(reader.fieldnames or [])
        if missing:
            raise ReviewFileError(f"{name} line 1: the header lacks the column(s) {sorted(missing)}")
        out = []
        try:
            for row in reader:
                out.append((reader.line_num, row))
        except csv.Error as exc:
            raise ReviewFileError(f"{name} line {reader.line_num}: {exc}") from exc
        return out
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReviewFileError(f"{name} line {number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise ReviewFileError(f"{name} line {number}: expected a JSON object, got {type(record).__name__}")
        out.append((number, record))
    return out


def parse_labels(data: bytes, name: str, known_ids: set[str]) -> dict[str, dict[str, str]]:
    """Validated labels by id: ``{"decision": ..., "edited_query": ...}`` (blank decisions skipped)."""
    labels: dict[str, dict[str, str]] = {}
    first_line: dict[str, int] = {}
    for number, record in _records(data, name):
        where = f"{name} line {number}"
        row_id = str(record.get("id") or "").strip()
        decision = str(record.get("decision") or "").strip().lower()
        edited = str(record.get("edited_query") or "").strip()
        if not row_id:
            raise ReviewFileError(f"{where}: the 'id' is missing")
        if row_id not in known_ids:
            raise ReviewFileError(f"{where}: id {row_id!r} is not a row of the dataset being reviewed")
        if row_id in first_line:
            raise ReviewFileError(f"{where}: id {row_id!r} is labelled twice (first on line {first_line[row_id]})")
        first_line[row_id] = number
        if not decision:
            continue
        if decision not in DECISIONS:
            raise ReviewFileError(f"{where}: decision {decision!r} is not one of {', '.join(DECISIONS)} (or blank)")
        if decision == "edit" and not edited:
            raise ReviewFileError(f"{where}: decision 'edit' needs a non-empty 'edited_query'")
        labels[row_id] = {"decision": decision, "edited_query": edited}
    return labels


def apply_labels(splits: dict[str, Sequence[dict[str, Any]]], labels: dict[str, dict[str, str]]
                 ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    counts = {"accepted": 0, "rejected": 0, "edited": 0}
    out: dict[str, list[dict[str, Any]]] = {}
    for name in SPLITS:
        rows = []
        for row in splits[name]:
            label = labels.get(row["query_id"])
            if label is None:
                rows.append(dict(row))
            elif label["decision"] == "reject":
                counts["rejected"] += 1
            elif label["decision"] == "edit":
                counts["edited"] += 1
                rows.append({**row, "query": label["edited_query"],
                             "query_id": query_id(row["chunk_id"], label["edited_query"])})
            else:
                counts["accepted"] += 1
                rows.append(dict(row))
        out[name] = rows
    return out, counts


def import_review(svc: Services, params: SyntheticParams, run: RunRef) -> ReviewImport:
    """Applies the filled-in review file ``params.review_labels`` (a path in the artifact store) to
    the dataset version ``params.review_dataset_id``, checks the result with the dataset suite and
    records it as a new version (``failed_dq`` and alerted when the suite fails)."""
    from ragops.synthetic.quality import SUITE_NAME, validate_dataset
    from ragops.synthetic.records import DatasetVersion, ReviewImport

    parent = svc.registry.get_artifact(int(params.review_dataset_id or 0))
    if parent is None or parent.kind != ArtifactKind.DATASET:
        raise InvalidInput(f"param review_dataset_id={params.review_dataset_id}: no dataset artifact has that id")
    labels_rel = params.review_labels
    if not svc.artifacts.exists(labels_rel):
        raise InvalidInput(f"param review_labels={labels_rel!r}: no such file in the artifact store")
    data = svc.artifacts.read_bytes(labels_rel)
    splits = dataset_rows(svc.artifacts, svc.artifacts.rel_of(parent.uri))
    labels = parse_labels(data, labels_rel, {r["query_id"] for name in SPLITS for r in splits[name]})
    applied, counts = apply_labels(splits, labels)
    reviewed = {name: to_rows(rows) for name, rows in applied.items()}
    content_hash = dataset_hash(reviewed)
    review_art = svc.registry.record_artifact(
        ArtifactKind.REVIEW, parent.name, sha256_bytes(data), svc.artifacts.uri(labels_rel),
        params={"dataset_id": parent.id, "dataset_version": parent.version}, metrics=counts, status=Status.APPLIED,
        run_key=run.run_key)
    if content_hash == parent.content_hash:
        # Only accepts (or blank decisions): the labels change no row, so the version stays the one
        # reviewed (recording it again would make the dataset its own parent).
        same = DatasetVersion(parent.id, parent.version, parent.content_hash, parent.uri, Status(parent.status),
                              False, len(reviewed["train"]), len(reviewed["test"]))
        return ReviewImport(review_art.id, parent.id, counts, same)
    dq = validate_dataset(reviewed, min_words=params.min_query_words, max_words=params.max_query_words,
                          max_doc_share=params.max_doc_share)
    svc.registry.record_dq(run.run_key, SUITE_NAME, f"dataset:{short(content_hash)}", dq.success, dq.statistics,
                           dq.failures)
    dataset = record_version(
        svc, reviewed, content_hash, usable=dq.success, name=parent.name, run_key=run.run_key,
        params={**parent.params, "reviewed_from": parent.id, "review_id": review_art.id},
        metrics={**{k: v for k, v in parent.metrics.items() if not k.startswith(("rows_", "docs_", "negatives_"))},
                 **split_stats(reviewed), "review": counts, "dq_success": dq.success},
        parents=[(parent.id, Relation.REVIEWED_FROM), (review_art.id, Relation.LABELS)])
    if not dq.success:
        svc.notifier.alert(f"reviewed dataset v{dataset.version} failed data quality",
                           "; ".join(str(f) for f in dq.failures)[:1500], run_key=run.run_key,
                           context={"dataset_id": dataset.dataset_id})
    return ReviewImport(review_art.id, parent.id, counts, dataset)
