"""Tier 3: a rag_index run reports its lineage to Airflow's OpenLineage integration.

The provider's file transport (configured as a deployment would, through
``AIRFLOW__OPENLINEAGE__TRANSPORT``) writes every event the run emits; the events must link the
corpus snapshot -> chunk set -> collection, with the embedding model as an input of the
collection, each dataset carrying the registry's version, content hash and metrics. The run is a
child process: the provider reads its configuration once per process, when its plugin loads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE_CORPUS = REPO / "tests" / "fixtures" / "corpus"
pytestmark = pytest.mark.dagrun


def run_in_child(dag_id: str, conf: dict, env: dict[str, str]) -> str:
    code = ("import json, sys\nfrom tests.dags.conftest import run_dag\n"
            "print('STATE', run_dag(sys.argv[1], json.loads(sys.argv[2])).state)")
    result = subprocess.run([sys.executable, "-c", code, dag_id, json.dumps(conf)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=1500)
    states = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("STATE ")]
    assert result.returncode == 0 and states, result.stderr[-4000:]
    return states[0]


def test_rag_index_emits_corpus_chunks_collection_lineage(ragops_env, tmp_path):
    corpus = tmp_path / "docs"
    shutil.copytree(FIXTURE_CORPUS, corpus)
    events_file = tmp_path / "openlineage.jsonl"
    env = dict(os.environ)
    env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
        {"type": "file", "log_file_path": str(events_file), "append": True})
    env["AIRFLOW__OPENLINEAGE__NAMESPACE"] = "ragops-test"
    env.pop("AIRFLOW__OPENLINEAGE__DISABLED", None)
    conf = {"sources": [{"type": "folder", "name": "fixture", "path": str(corpus), "root": str(tmp_path)}],
            "alias": "TestDocs", "chunk_size": 96, "chunk_overlap": 16, "smoke_sample": 10,
            "smoke_min_hit_rate": 0.7}

    assert run_in_child("rag_index", conf, env) == "success"

    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    complete = {e["job"]["name"]: e for e in events if e["eventType"] == "COMPLETE" and "." in e["job"]["name"]}

    def names(event: dict, side: str) -> set[tuple[str, str]]:
        return {(d["namespace"], d["name"]) for d in event.get(side, [])}

    registry = ragops_env.registry
    chunks_art = registry.list_artifacts("chunks", "TestDocs")[0]
    collection_art = registry.list_artifacts("collection", "TestDocs")[0]
    model_art = registry.parent(collection_art.id, "embedded_with")
    corpus_ds = ("ragops://corpus", "TestDocs")
    chunks_ds = ("ragops://chunks", "TestDocs")
    collection_ds = ("ragops://collection", "TestDocs")
    model_ds = ("ragops://model", model_art.name)

    load, chunk, plan = (complete[f"rag_index.{t}"] for t in ("load_documents", "chunk", "plan"))
    assert corpus_ds in names(load, "outputs")
    assert names(chunk, "inputs") == {corpus_ds} and names(chunk, "outputs") == {chunks_ds}
    assert {chunks_ds, model_ds} <= names(plan, "inputs") and collection_ds in names(plan, "outputs")
    # The alias swap writes the collection that went live; the gate reads it and writes its evaluation.
    assert collection_ds in names(complete["rag_index.swap_alias"], "outputs")
    assert collection_ds in names(complete["rag_index.gate"], "inputs")
    # Every dataset carries its registry version, content hash and metrics.
    (out,) = [d for d in chunk["outputs"] if (d["namespace"], d["name"]) == chunks_ds]
    facet = out["facets"]["ragops_artifact"]
    assert out["facets"]["version"]["datasetVersion"] == f"v{chunks_art.version}"
    assert facet["artifactId"] == chunks_art.id and facet["contentHash"] == chunks_art.content_hash
    assert facet["metrics"]["chunks"] == chunks_art.metrics["chunks"] > 0
    assert facet["registrySchema"] == ragops_env.schema
    # The events belong to this DAG run (the provider's parent-run facet links them).
    parents = {e["run"]["facets"]["parent"]["job"]["name"] for e in complete.values() if "parent" in e["run"]["facets"]}
    assert parents == {"rag_index"}
    # close_run's bookkeeping reads are not lineage.
    assert not complete["rag_index.close_run"].get("inputs")
