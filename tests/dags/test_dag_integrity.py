"""Tier 1: every DAG imports cleanly and follows the bundle's conventions."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
HEAVY = {"torch", "sentence_transformers", "transformers", "lancedb", "weaviate", "great_expectations",
         "datasets", "pandas", "numpy", "openai", "pyarrow"}


@pytest.fixture(scope="module")
def dagbag(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def dag_files() -> list[Path]:
    return sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert len(dagbag.dags) == len(dag_files())


@pytest.mark.parametrize("path", dag_files(), ids=lambda p: p.stem)
def test_dag_conventions(dagbag, path):
    dag = dagbag.get_dag(path.stem)
    assert dag is not None, f"{path.name} must define the DAG {path.stem!r} (file stem = dag_id)"
    assert dag.doc_md and dag.doc_md.strip().startswith(f"# {path.stem}"), "doc_md must be the module docstring"
    assert "Connections" in dag.doc_md or "connections" in dag.doc_md
    assert "Params" in dag.doc_md or "params" in dag.doc_md
    assert dag.tags and "ragops" in dag.tags
    assert dag.catchup is False
    assert dag.start_date.tzinfo is not None
    assert dag.timetable is not None
    assert dag.default_args.get("retries", 0) >= 1
    assert isinstance(dag.default_args.get("retry_delay"), timedelta)
    for name, param in dag.params.items():
        assert param.description, f"{path.stem}: param {name!r} needs a description"


@pytest.mark.parametrize("path", dag_files(), ids=lambda p: p.stem)
def test_no_top_level_work(path):
    """No heavy imports, Variable.get or connections at module level: parsing stays cheap."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in HEAVY, f"{path.name} imports {name} at top level"
    # Calls evaluated at parse time: anything outside function bodies (decorator arguments included).
    parse_time_calls = []
    for node in tree.body:
        nodes = [*node.decorator_list, *node.args.defaults] if isinstance(node, ast.FunctionDef) else [node]
        for part in nodes:
            parse_time_calls += [c for c in ast.walk(part) if isinstance(c, ast.Call)]
    names = {ast.unparse(c.func) for c in parse_time_calls}
    assert not {n for n in names if n.endswith(("Variable.get", "get_connection", "Connection.get"))}, names
