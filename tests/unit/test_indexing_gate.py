"""The collection gate's golden-query check, through the same step functions as the DAG:
a collection may go live only if it does no worse than the live one on the golden queries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.unit.training_data import save_broken_model

from ragops.config import RagopsSettings
from ragops.errors import GateFailed
from ragops.indexing.params import IndexParams
from ragops.indexing.pipeline import run_pipeline
from ragops.services import Services

FIXTURE_CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
GOLDEN = [
    ("how do I restore a backup to a point in time", "operations/backup.md"),
    ("which Prometheus metrics does the admin port expose", "operations/monitoring.rst"),
    ("where is the configuration file read from", "guides/configuration.rst"),
    ("what is new in release 2.4", "release-notes.txt"),
    ("does Tern support atomic transactions", "faq.txt"),
    ("what does the write-ahead log guarantee", "reference/wal.html"),
]


@pytest.fixture
def setup(registry, tmp_path, embedder):
    corpus = tmp_path / "docs"
    shutil.copytree(FIXTURE_CORPUS, corpus)
    golden = tmp_path / "golden.jsonl"
    # Folder documents are named "<source name>:<path>"; the source below is named "fx".
    golden.write_text("".join(json.dumps({"query": q, "doc_id": f"fx:{d}"}) + "\n" for q, d in GOLDEN))
    settings = RagopsSettings.from_env({"RAGOPS_PG_DSN": registry.dsn, "RAGOPS_SCHEMA": registry.schema,
                                        "RAGOPS_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
                                        "RAGOPS_VECTOR_DIR": str(tmp_path / "vectors")})
    svc = Services(settings)
    params = IndexParams(alias="Golden", sources=[{"type": "folder", "name": "fx", "path": str(corpus),
                                                   "root": str(tmp_path)}],
                         chunk_size=96, chunk_overlap=16, smoke_sample=8, smoke_min_hit_rate=0.5,
                         golden_queries=str(golden), golden_mode="dense", ndcg_tolerance=0.02)
    return svc, params, tmp_path


def test_golden_gate_keeps_a_worse_collection_from_going_live(setup, registry, base_model_path):
    svc, params, tmp_path = setup
    store = svc.store
    first = run_pipeline(svc, params, "r1")
    live = store.get_alias("Golden")
    golden = first["gate"]["golden_ndcg"]
    assert golden["live"] is None and golden["candidate"] > 0.6  # the base model finds most pages

    # A re-embedding with a worse model must not replace it, however healthy its counts look.
    broken = tmp_path / "broken-model"
    save_broken_model(base_model_path, broken)
    worse = params.replace(embedding_model=str(broken), smoke_min_hit_rate=0.0)
    with pytest.raises(GateFailed, match="golden_ndcg"):
        run_pipeline(svc, worse, "r2")
    assert store.get_alias("Golden") == live
    failed = [a for a in registry.list_artifacts("collection", "Golden") if a.status == "failed_gate"]
    assert len(failed) == 1
    report = registry.list_artifacts("evaluation", "Golden-gate")[-1]
    assert report.status == "failed" and report.metrics["golden_ndcg"]["live"] > report.metrics["golden_ndcg"]["candidate"]
    alerts = registry.alerts("ragops_cli/r2")
    assert any(a["title"].startswith("gate failed") for a in alerts)
    assert registry.get_run("ragops_cli/r2")["status"] == "failed"
