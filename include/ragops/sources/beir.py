"""BEIR-format benchmarks: corpus.jsonl, queries.jsonl and qrels/<split>.tsv."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ragops.documents import Block, Document
from ragops.sources.core import ErrorSink, LoadOptions, LoadResult, SourceSpec, resolve_within_root
from ragops.sources.errors import SourceError


def load_beir(spec: SourceSpec, options: LoadOptions) -> LoadResult:
    """One Document per corpus line (doc_id = _id); a bad line is an error naming file and line."""
    folder, _ = resolve_within_root(spec)
    corpus = folder / "corpus.jsonl"
    if not corpus.is_file():
        raise SourceError(f"source {spec.name!r}: {str(corpus)!r} does not exist (a BEIR folder holds "
                          "corpus.jsonl)", path=str(corpus), reason="missing")
    source = spec.name or f"beir:{folder.name}"
    sink = ErrorSink(options.on_error)
    documents: dict[str, Document] = {}
    lines = 0
    with corpus.open(encoding="utf-8", errors="strict") as handle:
        for lineno, line in enumerate(_lines(handle, corpus), start=1):
            if not line.strip():
                continue
            lines += 1
            where = f"{corpus.name} line {lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                sink.add(f"{corpus.name}:{lineno}", "invalid_json", f"{where}: invalid JSON ({exc.msg})")
                continue
            if not isinstance(row, dict) or not str(row.get("_id", "")).strip():
                sink.add(f"{corpus.name}:{lineno}", "missing_id", f"{where}: no '_id' field")
                continue
            doc_id = str(row["_id"])
            title = " ".join(str(row.get("title") or "").split())
            text = " ".join(str(row.get("text") or "").split())
            if not text and not title:
                sink.add(f"{corpus.name}:{lineno}", "no_text", f"{where}: document {doc_id!r} has no text")
                continue
            if doc_id in documents:
                sink.add(f"{corpus.name}:{lineno}", "duplicate_id", f"{where}: duplicate _id {doc_id!r}")
                continue
            documents[doc_id] = Document(doc_id=doc_id, source=source, title=title,
                                         blocks=[Block("paragraph", text or title)], format="beir",
                                         metadata={"path": corpus.name, "format": "beir"})
    docs = list(documents.values())
    stats = {"lines": lines, "documents": len(docs), "errors": len(sink.errors)}
    return LoadResult(documents=docs, errors=sink.errors, stats=stats)


def _lines(handle, path: Path):
    try:
        yield from handle
    except UnicodeDecodeError as exc:
        raise SourceError(f"{str(path)!r} is not valid UTF-8 ({exc.reason} at byte {exc.start})",
                          path=str(path), reason="encoding") from None


def load_beir_queries(folder: str | Path) -> dict[str, str]:
    """query id -> query text, from queries.jsonl."""
    path = Path(folder) / "queries.jsonl"
    if not path.is_file():
        raise SourceError(f"{str(path)!r} does not exist", path=str(path), reason="missing")
    queries: dict[str, str] = {}
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                queries[str(row["_id"])] = str(row["text"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise SourceError(f"{path.name} line {lineno}: not a query record ({exc})", path=str(path),
                                  reason="invalid_json") from None
    return queries


def load_beir_qrels(folder: str | Path, split: str = "test") -> dict[str, dict[str, int]]:
    """query id -> {doc id: relevance}, from qrels/<split>.tsv (with its header line)."""
    path = Path(folder) / "qrels" / f"{split}.tsv"
    if not path.is_file():
        raise SourceError(f"{str(path)!r} does not exist (split {split!r})", path=str(path), reason="missing")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for lineno, row in enumerate(reader, start=1):
            if lineno == 1 and row and not row[-1].lstrip("-").isdigit():
                continue  # the header
            if not row:
                continue
            try:
                query_id, doc_id, score = row[0], row[1], int(row[2])
            except (IndexError, ValueError):
                raise SourceError(f"{path.name} line {lineno}: expected 'query-id<TAB>corpus-id<TAB>score', "
                                  f"got {row!r}", path=str(path), reason="invalid_qrels") from None
            qrels.setdefault(query_id, {})[doc_id] = score
    return qrels
