"""A small indexed corpus for the query-path and service tests: the fixture corpus, indexed with
the real pipeline (LanceDB, MiniLM, a lineage schema of its own), so citations come from real lineage."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURE_CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
SOURCE = "fx"
# Queries the fixture corpus answers, with the document that answers each.
GOLDEN = [
    ("how do I restore a backup to a point in time", "operations/backup.md"),
    ("which Prometheus metrics does the admin port expose", "operations/monitoring.rst"),
    ("where is the configuration file read from", "guides/configuration.rst"),
    ("what is new in release 2.4", "release-notes.txt"),
    ("does Tern support atomic transactions", "faq.txt"),
    ("what does the write-ahead log guarantee", "reference/wal.html"),
]


@dataclass
class Corpus:
    svc: Any
    registry: Any
    alias: str
    root: Path
    versions: list[str] = field(default_factory=list)     # collection names, oldest first
    ids: dict[str, set[str]] = field(default_factory=dict)  # collection -> its chunk ids

    @property
    def settings_env(self) -> dict[str, str]:
        s = self.svc.settings
        # The embedded store by name: scripts/test.sh exports WEAVIATE_URL for the Weaviate tests,
        # which would otherwise send a CLI child to Weaviate.
        return {"RAGOPS_PG_DSN": s.pg_dsn, "RAGOPS_SCHEMA": s.schema, "RAGOPS_ARTIFACT_ROOT": str(s.artifact_root),
                "RAGOPS_VECTOR_DIR": str(s.vector_dir), "RAGOPS_VECTOR_BACKEND": s.vector_backend}


def new_registry(dsn: str) -> Any:
    from ragops.lineage import Registry

    registry = Registry(dsn, schema=f"t_{uuid.uuid4().hex[:12]}")
    registry.migrate()
    return registry


def index_corpus(registry: Any, root: Path, embedder: Any, *, alias: str = "Docs", chunk_size: int = 96,
                 embedding_model: str = "production", run_id: str = "r1", corpus: Corpus | None = None) -> Corpus:
    """Indexes the fixture corpus into ``alias`` (another call adds a version and swaps to it)."""
    from ragops.config import RagopsSettings
    from ragops.indexing.params import IndexParams
    from ragops.indexing.pipeline import run_pipeline
    from ragops.services import Services

    docs = root / "docs"
    if not docs.exists():
        shutil.copytree(FIXTURE_CORPUS, docs)
    if corpus is None:
        settings = RagopsSettings.from_env({"RAGOPS_PG_DSN": registry.dsn, "RAGOPS_SCHEMA": registry.schema,
                                            "RAGOPS_ARTIFACT_ROOT": str(root / "artifacts"),
                                            "RAGOPS_VECTOR_DIR": str(root / "vectors")})
        corpus = Corpus(Services(settings), registry, alias, root)
    params = IndexParams(alias=alias, sources=[{"type": "folder", "name": SOURCE, "path": str(docs), "root": str(root)}],
                         chunk_size=chunk_size, chunk_overlap=16, smoke_sample=8, smoke_min_hit_rate=0.0,
                         embedding_model=embedding_model)
    run_pipeline(corpus.svc, params, run_id, embedder=embedder if embedding_model == "production" else None)
    live = corpus.svc.store.get_alias(alias)
    corpus.versions.append(live)
    corpus.ids[live] = {o.id for o in corpus.svc.store.iter_objects(live)}
    return corpus


def indexed_corpus(pg_dsn: str, root: Path, embedder: Any) -> Iterator[Corpus]:
    """A module fixture's body: the corpus indexed under ``root`` in a schema of its own, both
    dropped afterwards (``yield from indexed_corpus(...)``)."""
    registry = new_registry(pg_dsn)
    try:
        yield index_corpus(registry, root, embedder)
    finally:
        registry.drop()
        shutil.rmtree(root, ignore_errors=True)


def golden_file(path: Path) -> Path:
    import json

    path.write_text("".join(json.dumps({"query": q, "doc_id": f"{SOURCE}:{d}"}) + "\n" for q, d in GOLDEN))
    return path
