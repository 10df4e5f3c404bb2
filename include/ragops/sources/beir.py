"""BEIR-format benchmarks: corpus.jsonl, queries.jsonl and qrels/<split>.tsv."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ragops.documents import Block, Document
from ragops.sources.core import ErrorSink, LoadOptions, LoadResult, SourceSpec, normalized_id, resolve_within_root
from ragops.sources.errors import FileRejected, SourceError


def load_beir(spec: SourceSpec, options: LoadOptions) -> LoadResult:
    """One Document per corpus row (doc_id = _id, NFC-normalized, as qrels name it); a bad row is an
    error naming file, line and reason.

    The corpus is streamed row by row and no read is longer than ``max_bytes`` + 1, so a row above
    ``max_bytes`` is skipped (and named) without ever being held whole; the file as a whole must
    fit ``max_total_bytes``. Ids are not prefixed with the source: BEIR qrels name them as they are.
    """
    folder, _ = resolve_within_root(spec)
    corpus = folder / "corpus.jsonl"
    if not corpus.is_file():
        raise SourceError(f"source {spec.name!r}: {str(corpus)!r} does not exist (a BEIR folder holds "
                          "corpus.jsonl)", path=str(corpus), reason="missing")
    size = corpus.stat().st_size
    if size > options.max_total_bytes:
        raise SourceError(f"source {spec.name!r}: {corpus.name} has {size} bytes, above max_total_bytes="
                          f"{options.max_total_bytes}; raise max_total_bytes on purpose", path=str(corpus),
                          reason="too_large")
    source = spec.name or f"beir:{folder.name}"
    sink = ErrorSink(options.on_error)
    documents: dict[str, Document] = {}
    rows = 0
    with open(corpus, "rb") as handle:
        for lineno, raw in _bounded_lines(handle, options.max_bytes):
            where, at = f"{corpus.name} line {lineno}", f"{corpus.name}:{lineno}"
            if raw is None:
                sink.add(at, "too_large", f"{where}: the row has more than max_bytes={options.max_bytes} bytes")
                continue
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                sink.add(at, "encoding", f"{where}: not valid UTF-8 (byte {exc.start})")
                continue
            if not line.strip():
                continue
            rows += 1
            try:
                doc = _document(line, source, corpus.name)
            except FileRejected as exc:
                sink.add(at, exc.reason, f"{where}: {exc.detail}")
                continue
            if doc.doc_id in documents:
                sink.add(at, "duplicate_id", f"{where}: duplicate _id {doc.doc_id!r}")
                continue
            documents[doc.doc_id] = doc
    docs = list(documents.values())
    stats = {"lines": rows, "documents": len(docs), "errors": len(sink.errors)}
    return LoadResult(documents=docs, errors=sink.errors, stats=stats)


def _bounded_lines(handle: BinaryIO, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) per line; None for a line longer than ``limit``, whose rest is skipped
    in reads of at most ``limit`` + 1 bytes."""
    lineno = 0
    while line := handle.readline(limit + 1):
        lineno += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = handle.readline(limit + 1)
            yield lineno, None
            continue
        yield lineno, line


def _document(line: str, source: str, file_name: str) -> Document:
    try:
        row = json.loads(line)
    except (ValueError, RecursionError) as exc:  # RecursionError: arrays nested past the recursion limit
        raise FileRejected("invalid_json", f"invalid JSON ({getattr(exc, 'msg', type(exc).__name__)})") from None
    if not isinstance(row, dict):
        raise FileRejected("invalid_json", f"a JSON {type(row).__name__}, not an object")
    raw_id = row.get("_id")
    if isinstance(raw_id, bool | dict | list):
        raise FileRejected("invalid_id", f"'_id' is a JSON {type(raw_id).__name__}, not a string or number")
    doc_id = normalized_id(str(raw_id)) if raw_id is not None else ""
    if not doc_id.strip():
        raise FileRejected("missing_id", "no '_id' field" if "_id" not in row else "an empty '_id'")
    title, text = _field(row, "title", doc_id), _field(row, "text", doc_id)
    if not text and not title:
        raise FileRejected("no_text", f"document {doc_id!r} has no text")
    return Document(doc_id=doc_id, source=source, title=title, blocks=[Block("paragraph", text or title)],
                    format="beir", metadata={"path": file_name, "format": "beir"})


def _field(row: dict, name: str, doc_id: str) -> str:
    value = row.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FileRejected("invalid_field", f"document {doc_id!r}: {name!r} is a JSON {type(value).__name__}, "
                                            "not a string")
    return " ".join(str(value).split())


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
                queries[normalized_id(str(row["_id"]))] = str(row["text"])
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
            # NFC, as load_beir normalizes corpus ids, so a judged document is found whatever the form.
            qrels.setdefault(normalized_id(query_id), {})[normalized_id(doc_id)] = score
    return qrels
